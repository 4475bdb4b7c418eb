export { CURRENCIES, checkAmount, checkCurrency } from './currency.ts';
export { type IntentInput, makePaymentOperations, type PaymentOperations } from './flows.ts';
export { Janitor } from './janitor.ts';
export type { RefundInput } from './refunds.ts';
export type { PaymentDeps } from './shared.ts';
export {
  checkIntentId,
  checkPaymentMethodRef,
  findCharge,
  findRefund,
  type IntentListParams,
  listIntents,
  listRefunds,
  requireIntent,
  serializeCharge,
  serializeIntent,
  serializeRefund,
} from './store.ts';
export { makeUpdateOperation } from './update.ts';
