export { makePaymentMethodOperations, type PaymentMethodOperations } from './operations.ts';
export {
  type BillingDetailsInput,
  checkPaymentMethodId,
  checkPaymentMethodInput,
  listPaymentMethods,
  type PaymentMethodInput,
  type PaymentMethodListParams,
  retrievePaymentMethod,
  serializePaymentMethod,
} from './service.ts';
