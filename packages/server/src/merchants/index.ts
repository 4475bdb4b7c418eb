export { Authenticator } from './authenticator.ts';
export { generateApiKey, type KeyKind, parseApiKey } from './keys.ts';
export {
  type AuthenticatedKey,
  type CreatedMerchant,
  countMerchants,
  createMerchant,
  findActiveKey,
  type Merchant,
  type RolledKey,
  rollKey,
} from './service.ts';
