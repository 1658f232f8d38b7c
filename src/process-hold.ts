/**
 * Holds the process open while a worker or an orchestrator runs, as a
 * listening server does, until the returned release is called (their stop()).
 *
 * Their own timers are unref'd, so only what they are doing (a query, a
 * socket) keeps the event loop alive. While the database restarts they may
 * have no open socket at all, between a connection lost and the next try:
 * without this hold the process ended right then, silently (`rota worker`
 * and `rota orchestrator` exited with code 13; test/cli/outlive-restart.test.ts).
 */
export function holdProcess(): () => void {
  // Only its existence matters: it fires about every twelve days.
  const hold = setInterval(() => {}, 2 ** 30);
  return () => clearInterval(hold);
}
