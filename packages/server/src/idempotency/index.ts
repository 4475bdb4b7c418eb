export { IdempotencyEngine, MAX_KEY_LENGTH, type RequestInfo } from './engine.ts';
export { phaseBatchOf } from './phase-batch.ts';
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
