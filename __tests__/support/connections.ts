// The TCP connections this test process holds, read from Linux's /proc: a client left connected
// to a server that outlives the test file (the run's shared Kafka broker, Postgres, Redis)
// keeps the jest worker from exiting.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

/** One TCP connection of this process. */
export interface TcpConnection {
  /** `host:port` of this end (IPv4 in dotted form, IPv6 as its hex words). */
  readonly local: string;
  /** `host:port` of the other end. */
  readonly remote: string;
  /** Remote port. */
  readonly remotePort: number;
}

const LISTEN = '0A';

function address(hex: string): { text: string; port: number } {
  const [host, portHex] = hex.split(':');
  const port = parseInt(portHex, 16);
  if (host.length !== 8) return { text: `[${host}]:${port}`, port };
  // IPv4 is one little-endian 32-bit word.
  const octets = [6, 4, 2, 0].map((i) => parseInt(host.slice(i, i + 2), 16));
  return { text: `${octets.join('.')}:${port}`, port };
}

/** This process's TCP connections (not its listening sockets), optionally only those to `remotePort`. */
export function openTcpConnections(remotePort?: number): TcpConnection[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`));
      if (match) inodes.add(match[1]);
    } catch {
      // The fd closed while listing (readdir's own one, or a socket closing now).
    }
  }
  const connections: TcpConnection[] = [];
  for (const table of ['/proc/self/net/tcp', '/proc/self/net/tcp6']) {
    for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields.length < 10 || fields[3] === LISTEN || !inodes.has(fields[9])) continue;
      const remote = address(fields[2]);
      if (remotePort !== undefined && remote.port !== remotePort) continue;
      connections.push({ local: address(fields[1]).text, remote: remote.text, remotePort: remote.port });
    }
  }
  return connections;
}

/**
 * The connections (to `remotePort`, if given) that are not in `before`, once those being closed
 * have gone or `timeoutMs` has passed: a closing connection goes within milliseconds, a leaked
 * one never does. Compared by local address, so connections of `before` that close meanwhile
 * do not matter.
 */
export async function leftoverTcpConnections(before: readonly TcpConnection[], remotePort?: number, timeoutMs = 10_000): Promise<TcpConnection[]> {
  const known = new Set(before.map((c) => c.local));
  const leftover = () => openTcpConnections(remotePort).filter((c) => !known.has(c.local));
  const deadline = Date.now() + timeoutMs;
  while (leftover().length > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
  return leftover();
}

/**
 * What a broker's request log (`ADSTREAM_KAFKA_REQUEST_LOG` of the local broker) says about the
 * client at the far end of `connection`: its client ids and the kinds of request it sent. Turns a
 * leaked Kafka connection into the name of the client that opened it.
 */
export function kafkaClientsOf(connection: TcpConnection, requestLog: string | undefined): string[] {
  if (!requestLog) return [];
  let text: string;
  try {
    text = readFileSync(requestLog, 'utf8');
  } catch {
    return [];
  }
  const seen = new Set<string>();
  for (const line of text.split('\n')) {
    if (!line.includes(`-${connection.local}-`)) continue;
    const clientId = /"clientId":"([^"]*)"/.exec(line)?.[1];
    const api = /"requestApiKeyName":"([^"]*)"/.exec(line)?.[1];
    seen.add(`${clientId ?? '?'} ${api ?? '?'}`);
  }
  return [...seen];
}
