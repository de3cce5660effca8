/**
 * A TCP proxy in front of a broker listener that can lose a produce acknowledgement on purpose:
 * it forwards a Produce request to the broker (which appends the records) and then cuts the
 * connection instead of passing the response back — the network failure that makes a producer
 * retry a send the broker has already written.
 */
import { createServer, Server, Socket } from 'node:net';

const PRODUCE_API_KEY = 0;

/** Splits a byte stream into Kafka frames (4-byte big-endian size, then the frame). */
class FrameReader {
  private buffer = Buffer.alloc(0);

  push(chunk: Buffer): Buffer[] {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    const frames: Buffer[] = [];
    while (this.buffer.length >= 4) {
      const size = this.buffer.readInt32BE(0);
      if (this.buffer.length < 4 + size) break;
      frames.push(this.buffer.subarray(0, 4 + size));
      this.buffer = this.buffer.subarray(4 + size);
    }
    return frames;
  }
}

/** The proxy; `listen()` first, then `forwardTo()` once the broker's real address is known. */
export class CuttingProxy {
  /** Produce responses withheld (connections cut) so far. */
  cuts = 0;
  private target?: { host: string; port: number };
  private armed = 0;
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  /** Listens on a free 127.0.0.1 port. */
  static async listen(): Promise<CuttingProxy> {
    const server = createServer((client) => proxy.accept(client));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const proxy = new CuttingProxy(server, (server.address() as { port: number }).port);
    return proxy;
  }

  /** Where connections go (`host:port`). */
  forwardTo(hostPort: string): void {
    const [host, port] = hostPort.split(':');
    this.target = { host, port: Number(port) };
  }

  /** The next `count` Produce requests reach the broker, but their responses never come back. */
  loseNextProduceAcks(count = 1): void {
    this.armed += count;
  }

  /** Passes every response again. */
  stopLosingAcks(): void {
    this.armed = 0;
  }

  /** Stops listening and cuts every connection. */
  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }

  private accept(client: Socket): void {
    if (!this.target) {
      client.destroy();
      return;
    }
    const upstream = new Socket();
    this.sockets.add(client).add(upstream);
    const doomed = new Set<number>();
    const requests = new FrameReader();
    const responses = new FrameReader();
    const cut = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', cut).on('close', cut);
    upstream.on('error', cut).on('close', cut);
    upstream.connect(this.target.port, this.target.host);
    client.on('data', (chunk: Buffer) => {
      for (const frame of requests.push(chunk)) {
        // Request header: size, api key (int16), api version (int16), correlation id (int32).
        if (frame.readInt16BE(4) === PRODUCE_API_KEY && this.armed > 0) {
          this.armed--;
          doomed.add(frame.readInt32BE(8));
        }
        upstream.write(frame);
      }
    });
    upstream.on('data', (chunk: Buffer) => {
      for (const frame of responses.push(chunk)) {
        // Response header: size, correlation id (int32).
        if (doomed.has(frame.readInt32BE(4))) {
          this.cuts++;
          cut();
          return;
        }
        client.write(frame);
      }
    });
  }
}
