export { createCustomerOperation, updateCustomerOperation } from './operations.ts';
export {
  type CustomerInput,
  type CustomerListParams,
  checkCustomerId,
  checkCustomerInput,
  deleteCustomer,
  listCustomers,
  retrieveCustomer,
  serializeCustomer,
} from './service.ts';
