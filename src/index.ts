export type {
  BatchCallback,
  BatchCallbackPayload,
  BatchOptions,
} from "./batches/batch-options.js";
export type {
  BatchEnqueued,
  Batches,
  BatchInfo,
  BatchState,
  BatchSummary,
  ListBatchesFilter,
} from "./batches/batches.js";
export type { ExpiryResult } from "./batches/expiry.js";
export type {
  QueueInfo,
  QueueLimit,
  QueueMinute,
  QueueState,
  Queues,
} from "./capacity/queues.js";
export {
  defineSweep,
  type SweepContext,
  type SweepDefinition,
  type SweepInfo,
  type Sweeps,
} from "./capacity/sweeps.js";
export type { CaptureEvent, CaptureInput } from "./capture/capture-input.js";
export type {
  CaptureInfo,
  CaptureRemoved,
  CaptureStatus,
  Captures,
  CaptureTransactionOption,
} from "./capture/captures.js";
export { createRota, Rota, type RotaOptions } from "./client.js";
export { type Clock, DatabaseClock, ManualClock, systemClock } from "./clock.js";
export { DEFAULT_SCHEMA } from "./config.js";
export type { ConnectionOptions, Executor } from "./db/database.js";
export { LATEST_SCHEMA_VERSION, type SchemaStatus } from "./db/migrate.js";
export type { Overlap, Owner } from "./db/queries/schedules.js";
export { type EmbeddedPostgres, startEmbeddedPostgres } from "./dev/embedded.js";
export {
  type DiagnoseOptions,
  type Diagnosis,
  type DiagnosisProblem,
  type DiagnosisWarning,
  type VacuumThresholds,
  type WarningCode,
  warningCodes,
} from "./diagnose.js";
export { errorCodes, isRotaError, RotaError, type RotaErrorCode } from "./errors.js";
export type { RotaEventMap, RotaEventName, RotaEvents } from "./events.js";
export {
  type LogFields,
  type Logger,
  type LogLevel,
  type StreamLoggerOptions,
  streamLogger,
} from "./logger.js";
export type { LeaseState } from "./orchestrator/leader.js";
export type { Orchestrator, OrchestratorOptions, TickReport } from "./orchestrator/orchestrator.js";
export { type BackoffFunction, type BackoffPolicy, backoffDelay } from "./queue/backoff.js";
export type { EnqueueResult, EnqueueSpec } from "./queue/enqueue.js";
export type {
  CancelResult,
  FindJobsFilter,
  JobError,
  JobPage,
  JobRecord,
  JobSummary,
  ListJobsFilter,
  ReplayFilter,
  RetryResult,
} from "./queue/job-admin.js";
export type { EnqueueOptions } from "./queue/job-options.js";
export type { RescueResult } from "./queue/rescue.js";
export type { RetentionOptions } from "./queue/retention.js";
export type { CadencePlan } from "./schedule/cadence-plan.js";
export {
  type DistributionFn,
  type DistributionTarget,
  defineDistribution,
} from "./schedule/distribution.js";
export type { MaterializeResult } from "./schedule/materializer.js";
export type { CatchUp } from "./schedule/plan.js";
export type { ReconcileResult } from "./schedule/reconciler.js";
export type {
  ImportedSchedule,
  ImportOptions,
  ImportResult,
  UnmappedOption,
} from "./schedule/schedule-import.js";
export type { ScheduleInput } from "./schedule/schedule-options.js";
export type {
  HandoverChange,
  Schedule,
  ScheduleExecution,
  Schedules,
  UpcomingRun,
  UpsertResult,
} from "./schedule/schedules.js";
export { nextOccurrences, parseInterval, type ScheduleSpec } from "./schedule/spec.js";
export type {
  AddTargetsResult,
  ScheduleTargets,
  Target,
  TargetInput,
} from "./schedule/targets.js";
export {
  type BatchContext,
  type BatchHandler,
  type BatchHandlerOptions,
  type BatchJob,
  type BatchOutcome,
  type BatchTaskDefinition,
  defineBatchTask,
  defineTask,
  type SingleTaskDefinition,
  type TaskDefinition,
  type TaskHandler,
  type TaskList,
} from "./task.js";
export type { JobContext, JobInfo } from "./worker/job-context.js";
export type { Worker, WorkerOptions } from "./worker/worker.js";
export type { HealthFailure, WorkerHealth } from "./worker/worker-health.js";
export type { WorkerInfo, WorkerRegistry } from "./worker/worker-registry.js";
