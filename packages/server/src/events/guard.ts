import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { BlockList, isIP } from 'node:net';
import { invalidRequest } from '../lib/errors.ts';

/**
 * The SSRF guard for webhook endpoints: a merchant chooses the URL, and Moneta posts to it
 * from inside the operator's network, so an endpoint must never reach loopback, private,
 * link-local (cloud metadata) or other internal addresses unless the operator allows it
 * (MONETA_WEBHOOK_ALLOW_PRIVATE, for development and tests). The URL is checked when the
 * endpoint is saved, and every connection checks the addresses its host name resolves to at
 * that moment (`guardedLookup`), so a name that later points inside is refused too.
 */
const INTERNAL = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const) {
  INTERNAL.addSubnet(net, prefix, 'ipv4');
}
// Not ::ffff:0:0/96: BlockList matches IPv4 addresses against it as mapped ones, so it would
// refuse every public IPv4 address; mapped addresses are checked against the IPv4 rules instead.
for (const [net, prefix] of [
  ['::', 96], // unspecified, loopback and the old IPv4-compatible form (::a.b.c.d)
  ['::ffff:0:0:0', 96], // IPv4-translated
  ['64:ff9b::', 96], // NAT64
  ['64:ff9b:1::', 48], // local NAT64
  ['100::', 64], // discard
  ['2001:db8::', 32], // documentation
  ['fc00::', 7], // unique local
  ['fe80::', 10], // link-local
  ['fec0::', 10], // site-local (deprecated)
  ['ff00::', 8], // multicast
] as const) {
  INTERNAL.addSubnet(net, prefix, 'ipv6');
}

function isInternalAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return INTERNAL.check(address, 'ipv4');
  if (family === 6) {
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
    if (mapped) return INTERNAL.check(mapped[1]!, 'ipv4');
    return INTERNAL.check(address, 'ipv6');
  }
  return true; // not an address at all: refuse
}

const MAX_URL_LENGTH = 2048;

/** Checks an endpoint URL as saved; throws a 400 naming `url`. */
export function checkEndpointUrl(raw: string, allow_private: boolean): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw invalidRequest('Invalid URL: the url must be an absolute http or https URL.', 'url', 'url_invalid');
  }
  if (raw.length > MAX_URL_LENGTH) {
    throw invalidRequest(`Invalid URL: at most ${MAX_URL_LENGTH} characters.`, 'url', 'url_invalid');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw invalidRequest('Invalid URL: only http and https URLs can receive webhooks.', 'url', 'url_invalid');
  }
  if (url.username || url.password) {
    throw invalidRequest('Invalid URL: credentials in the URL are not allowed.', 'url', 'url_invalid');
  }
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const internal_name = host === 'localhost' || host.endsWith('.localhost') || host.endsWith('.internal');
  if (!allow_private && (internal_name || (isIP(host) !== 0 && isInternalAddress(host)))) {
    throw invalidRequest(
      'Invalid URL: webhook endpoints cannot be loopback, private or link-local addresses.',
      'url',
      'url_invalid',
    );
  }
  return url.toString();
}

type LookupCallback = (
  err: NodeJS.ErrnoException | null,
  address: string | LookupAddress[],
  family?: number,
) => void;

/** A `lookup` for outgoing connections that refuses internal addresses (unless allowed). */
export function guardedLookup(allow_private: boolean) {
  return (hostname: string, options: object, callback: LookupCallback): void => {
    dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, []);
      const list = addresses as LookupAddress[];
      const refused = allow_private ? [] : list.filter((a) => isInternalAddress(a.address));
      if (refused.length > 0) {
        const e = new Error(
          `refused to connect to ${hostname}: it resolves to an internal address`,
        ) as NodeJS.ErrnoException;
        e.code = 'EWEBHOOKINTERNAL';
        return callback(e, []);
      }
      if ((options as { all?: boolean }).all) return callback(null, list);
      const first = list[0]!;
      return callback(null, first.address, first.family);
    });
  };
}
