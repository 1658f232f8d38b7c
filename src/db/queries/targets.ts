import { defineQueries, statement } from "../sql.js";

/** A target as List returns it, with its next planned execution. */
export interface TargetRow {
  target_key: string;
  payload: unknown;
  enabled: boolean;
  from_source: boolean;
  created_at: Date;
  next_run_at: Date | null;
  offset_ms: number | null;
  next_occurrence_at: Date | null;
}

type OfSchedule = { scheduleId: string };

/** Every statement on schedule_targets and fanned-out executions, from targets.sql. */
export const targetQueries = defineQueries("targets", {
  Add: statement<
    OfSchedule & { keys: string[]; payloads: (string | null)[]; enabled: (boolean | null)[] },
    { added: number; updated: number; removed_executions: number; added_keys: string[] }
  >(),
  Remove: statement<
    OfSchedule & { keys: string[] },
    { removed: number; removed_executions: number }
  >(),
  List: statement<OfSchedule & { after: string | null; limit: number }, TargetRow>(),
  Count: statement<OfSchedule, { total: number; enabled: number }>(),
  Rank: statement<
    OfSchedule & { key: string; byHash: boolean; salt: string },
    { rank: number; total: number; present: boolean | null }
  >(),
  DeclareByKey: statement<OfSchedule>(),
  DeclareByHash: statement<OfSchedule & { salt: string }>(),
  FetchTargets: statement<Record<never, never>, { target_key: string }>(),
  CloseTargets: statement(),
  FanOut: statement<
    OfSchedule & {
      occurrence: Date;
      deadline: Date | null;
      keys: string[];
      offsets: number[];
      distribution: string;
      aheadOnly: boolean;
    },
    { inserted: number; notified: unknown }
  >(),
  DeclareSource: statement(),
  FetchSource: statement<Record<never, never>, { key: string }>(),
  CloseSource: statement(),
  MarkSeen: statement<OfSchedule & { keys: string[] }, { added: string[]; invalid: number }>(),
  RemoveSourceTargets: statement<
    OfSchedule & { unseenOnly: boolean },
    { removed: number; removed_executions: number }
  >(),
  CheckSource: statement(),
  FetchCheck: statement<Record<never, never>, { key: string }>(),
  CloseCheck: statement(),
  NoteSource: statement<OfSchedule & { note: string | null }>(),
  SetFanOut: statement<OfSchedule, { version: string }>(),
  RestoreUnplaced: statement<OfSchedule & { occurrence: Date }, { id: string }>(),
  CadenceMinutes: statement<
    OfSchedule & { occurrence: Date; until: Date },
    { minute: Date; count: number }
  >(),
});
