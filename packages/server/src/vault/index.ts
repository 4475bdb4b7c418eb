/**
 * The card vault: the only module that sees card numbers in clear. Its surface is small on
 * purpose: seal a card (→ a card id), use a card (audited), delete a card, rotate the KEK.
 */
export { VaultIntegrityError } from './crypto.ts';
export {
  DEV_WARNING,
  EnvKeyProvider,
  FileKeyProvider,
  type KeyProvider,
  KeyringMismatch,
  openKeyProvider,
  UnknownKekVersion,
  type WrappedKey,
} from './keys.ts';
export {
  isRetiredKekWrite,
  type RotationOptions,
  type RotationProgress,
  type RotationResult,
  rotateKek,
} from './rotate.ts';
export {
  type CardInClear,
  CardNotInVault,
  type CardUse,
  type SealedCard,
  Vault,
  type VaultActor,
  type VaultOptions,
  type VaultScope,
} from './vault.ts';
