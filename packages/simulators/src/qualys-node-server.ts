import {
  createServer,
  type IncomingMessage,
  type ServerResponse,
} from "node:http";
import type { AddressInfo } from "node:net";

/**
 * Serves a fetch-style handler over node:http, for two reasons seen with
 * Bun 1.3.5:
 * - Bun.serve ends a chunked body cleanly when its stream fails, which would
 *   hide a simulated connection reset. Here a failing body stream destroys
 *   the socket, so the client sees the connection close in mid-body.
 * - Bun.serve pulls a ReadableStream body as fast as it can, whatever the
 *   client reads. Here chunks are written with backpressure, so a huge page
 *   is generated only as fast as it is read.
 * A client that goes away cancels the body stream.
 */
export interface NodeServerHandle {
  /** Base URL, for example http://127.0.0.1:41234. */
  url: string;
  stop(): Promise<void>;
}

export async function serveOverNodeHttp(options: {
  host: string;
  port: number;
  handler: (request: Request) => Promise<Response>;
}): Promise<NodeServerHandle> {
  const server = createServer((req, res) => {
    handle(req, res, options.handler).catch((error: unknown) => {
      if (!res.headersSent)
        res.writeHead(500, { "Content-Type": "text/plain" });
      res.end(
        `simulator error: ${error instanceof Error ? error.message : String(error)}\n`,
      );
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  const host = address.address.includes(":")
    ? `[${address.address}]`
    : address.address;

  return {
    url: `http://${host}:${address.port}`,
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function handle(
  req: IncomingMessage,
  res: ServerResponse,
  handler: (request: Request) => Promise<Response>,
) {
  const request = await toRequest(req);
  const response = await handler(request);
  const headers: Record<string, string> = {};
  response.headers.forEach((value, name) => {
    headers[name] = value;
  });
  res.writeHead(response.status, headers);
  if (!response.body) {
    res.end();
    return;
  }
  await pipeBody(response.body, res);
}

async function toRequest(req: IncomingMessage): Promise<Request> {
  const url = `http://${req.headers.host ?? "localhost"}${req.url ?? "/"}`;
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    if (typeof value === "string") headers.set(name, value);
    else if (Array.isArray(value)) headers.set(name, value.join(", "));
  }
  const method = req.method ?? "GET";
  if (method === "GET" || method === "HEAD")
    return new Request(url, { method, headers });

  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return new Request(url, { method, headers, body: Buffer.concat(chunks) });
}

async function pipeBody(body: ReadableStream<Uint8Array>, res: ServerResponse) {
  const reader = body.getReader();
  const cancel = () => {
    reader.cancel(new Error("client closed the connection")).catch(() => {});
  };
  // A client that left during a slow first byte is already gone here.
  if (res.destroyed) {
    cancel();
    return;
  }
  res.once("close", () => {
    if (!res.writableFinished) cancel();
  });

  let lastWrite: Promise<void> = Promise.resolve();
  for (;;) {
    let chunk: { done: boolean; value?: Uint8Array };
    try {
      chunk = await reader.read();
    } catch (error) {
      // The body failed: once the bytes written so far reached the socket,
      // close it without ending the response. Bun's node:http hands the
      // bytes to the socket a tick after the write callback, hence the wait.
      await Promise.race([lastWrite, Bun.sleep(1000)]);
      await Bun.sleep(5);
      res.destroy(error instanceof Error ? error : new Error(String(error)));
      return;
    }
    if (res.destroyed) return;
    if (chunk.done) {
      res.end();
      return;
    }
    let flushed = true;
    lastWrite = new Promise<void>((resolve) => {
      flushed = res.write(chunk.value, () => resolve());
    });
    if (!flushed) await drainedOrClosed(res);
  }
}

function drainedOrClosed(res: ServerResponse): Promise<void> {
  return new Promise<void>((resolve) => {
    if (res.destroyed) {
      resolve();
      return;
    }
    const done = () => {
      res.off("drain", done);
      res.off("close", done);
      resolve();
    };
    res.on("drain", done);
    res.on("close", done);
  });
}
