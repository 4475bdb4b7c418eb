/**
 * Events and webhooks: the outbox (`eventInsert`), the Events API, webhook endpoints, and
 * the dispatcher that delivers events to them, signed as Stripe signs them.
 */

export {
  type DeliveryRow,
  endpointScope,
  listDeliveries,
  MAX_RESEND,
  reapEvents,
  resend,
  serializeDelivery,
} from './deliveries.ts';
export {
  DISABLE_AFTER_S,
  type DispatcherOptions,
  MAX_ATTEMPTS,
  RETRY_DELAYS_S,
  retryDelay,
  WebhookDispatcher,
} from './dispatcher.ts';
export {
  DEFAULT_SECRET_OVERLAP_S,
  deleteEndpoint,
  type EndpointInput,
  type EndpointRow,
  listEndpoints,
  MAX_SECRET_OVERLAP_S,
  newEndpoint,
  retrieveEndpoint,
  rollSecret,
  serializeEndpoint,
  updateEndpoint,
} from './endpoints.ts';
export { checkEndpointUrl, isInternalAddress } from './guard.ts';
export {
  type ConsumeOptions,
  connectNats,
  consumeEvents,
  ensureStreams,
  type Family,
  familyOf,
  type HandledStore,
  NatsPublisher,
  pgHandledStore,
  streamName,
  subjectOf,
} from './nats.ts';
export {
  createEndpointOperation,
  type EndpointCreateInput,
  type EndpointOperations,
  endpointOperations,
} from './operations.ts';
export { EVENTS_INSERT, eventInsert } from './outbox.ts';
export { OUTBOX_CHANNEL, OutboxListener, OutboxNotifier } from './signal.ts';
export { signatureHeader } from './signature.ts';
export {
  EVENT_RETENTION_DAYS,
  type EventListParams,
  type EventRow,
  listEvents,
  retrieveEvent,
  serializeEvent,
} from './store.ts';
