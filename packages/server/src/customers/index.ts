export { createCustomerOperation, updateCustomerOperation } from './operations.ts';
export {
  type CustomerInput,
  type CustomerListParams,
  checkCustomerId,
  checkCustomerInput,
  customerExists,
  deleteCustomer,
  listCustomers,
  requireLiveCustomer,
  retrieveCustomer,
  serializeCustomer,
} from './service.ts';
