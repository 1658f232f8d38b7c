// rota/dashboard: a subpath of its own, so a worker that never serves the
// dashboard never loads Hono.
export type { DashboardToken } from "./access.js";
export { createDashboard, type Dashboard, type DashboardOptions } from "./dashboard.js";
export {
  isLoopback,
  type ServeDashboardOptions,
  type ServedDashboard,
  serveDashboard,
} from "./serve.js";
