export { IdempotencyEngine, MAX_KEY_LENGTH, type RequestInfo } from './engine.ts';
export { DEFAULT_PHASE_BATCH_OPTIONS, type PhaseBatchOptions, phaseBatchOf } from './phase-batch.ts';
export {
  type ExecutionResult,
  FINISHED,
  type IdempotentOperation,
  jsonResponse,
  onePhaseOperation,
  type PhaseContext,
  type PhaseOptions,
  type PhaseOutcome,
  type RequestScope,
  STARTED,
  type StoredResponse,
} from './types.ts';
