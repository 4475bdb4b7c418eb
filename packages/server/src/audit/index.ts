/**
 * The audit log (PCI DSS 10): every operator action, every access to card data, failed
 * logins and credential changes, as one append-only, hash-chained table (`audit_log`, see
 * the 0005_audit migration). The database assigns the order and the hashes, so writers in
 * any number of processes extend one chain; `verifyAudit` (`moneta audit verify`) finds
 * edited, removed or reordered rows.
 *
 * Entries name objects by id. They must never carry card data (PAN, CVC, track data), keys,
 * passwords or other secrets: the log is read by auditors and kept for years. As a safety
 * net, `details` passes through the same card-number mask as log lines.
 */
export {
  AUDIT_CASTS,
  AUDIT_COLUMNS,
  AUDIT_OUTCOMES,
  type AuditContext,
  type AuditEntry,
  type AuditOutcome,
  appendAudit,
  auditInsert,
  auditValues,
} from './log.ts';
export { type AuditFinding, MAX_FINDINGS, type VerifyAuditOptions, verifyAudit } from './verify.ts';
