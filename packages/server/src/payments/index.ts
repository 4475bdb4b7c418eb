export { CURRENCIES, checkAmount, checkCurrency } from './currency.ts';
export {
  type IntentInput,
  makePaymentOperations,
  type PaymentDeps,
  type PaymentOperations,
  type RefundInput,
} from './flows.ts';
export { Janitor } from './janitor.ts';
export {
  checkIntentId,
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
