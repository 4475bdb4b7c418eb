/**
 * Events and webhooks: the outbox (`eventInsert`), the Events API, webhook endpoints, and
 * the dispatcher that delivers events to them, signed as Stripe signs them; NATS JetStream
 * for other services.
 */

export {
  endpointScope,
  listDeliveries,
  type ResendTarget,
  reapEvents,
  resend,
  resendTarget,
  serializeDelivery,
} from './deliveries.ts';
export { MAX_ATTEMPTS, RETRY_DELAYS_S, WebhookDispatcher } from './dispatcher.ts';
export {
  DEFAULT_SECRET_OVERLAP_S,
  deleteEndpoint,
  type EndpointInput,
  listEndpoints,
  MAX_ENABLED_EVENTS,
  MAX_SECRET_OVERLAP_S,
  retrieveEndpoint,
  serializeEndpoint,
} from './endpoints.ts';
export {
  type ConsumeOptions,
  connectNats,
  consumeEvents,
  type HandledStore,
  NatsPublisher,
  pgHandledStore,
  reapHandledEvents,
  streamName,
} from './nats.ts';
export { type EndpointCreateInput, type EndpointOperations, endpointOperations } from './operations.ts';
export { EVENTS_INSERT, eventInsert } from './outbox.ts';
export { OutboxListener, OutboxNotifier } from './signal.ts';
export { type EventListParams, listEvents, retrieveEvent, serializeEvent } from './store.ts';
