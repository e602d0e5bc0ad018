import {
  afterEach,
  beforeEach,
  describe,
  expect,
  setDefaultTimeout,
  test,
} from "bun:test";
import { fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import {
  credentials,
  makeGenericClientConstructor,
  status,
  type Client,
  type ClientDuplexStream,
  type ServiceError,
} from "@grpc/grpc-js";
import {
  createGrpcServiceDefinition,
  healthProto,
  ServingStatus,
} from "@vulnsub/shared";
import * as reflectionV1 from "@vulnsub/shared/src/gen/grpc/reflection/v1/reflection_pb.ts";
import * as reflectionV1alpha from "@vulnsub/shared/src/gen/grpc/reflection/v1alpha/reflection_pb.ts";
import {
  createTempDir,
  makeBatch,
  makeRecord,
  removeDir,
  sendBatches,
  startTestFlusher,
} from "./helpers.ts";

// Real processes, servers and fsyncs on a shared machine can be slow.
setDefaultTimeout(30_000);

let dataDir: string;
let release: () => void;
let running: Awaited<ReturnType<typeof startTestFlusher>>;
let clients: Client[];

beforeEach(async () => {
  dataDir = await createTempDir();
  clients = [];
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  // Recovery waits for the test, so NOT_SERVING can be observed.
  running = await startTestFlusher(dataDir, { beforeRecovery: () => gate });
});

afterEach(async () => {
  release();
  for (const client of clients) client.close();
  running.client.close();
  await running.flusher.stop();
  await removeDir(dataDir);
});

function connect<T extends Client>(service: Parameters<typeof createGrpcServiceDefinition>[0]) {
  const Constructor = makeGenericClientConstructor(createGrpcServiceDefinition(service), "x");
  const client = new Constructor(running.flusher.address, credentials.createInsecure());
  clients.push(client);
  return client as unknown as T & Record<string, (...args: unknown[]) => unknown>;
}

function check(service: string): Promise<{ status: number } | ServiceError> {
  const client = connect(healthProto.Health);
  return new Promise((resolve) => {
    client.check?.({ service }, (error: ServiceError | null, response: { status: number }) =>
      resolve(error ?? response),
    );
  });
}

describe("health", () => {
  test("NOT_SERVING while recovering", async () => {
    expect(await check("")).toMatchObject({ status: ServingStatus.NOT_SERVING });
    expect(await check("vulnsub.v1.Ingest")).toMatchObject({
      status: ServingStatus.NOT_SERVING,
    });
    const early = await sendBatches(running.client, [makeBatch(1, [makeRecord("a")])]);
    expect(early.error?.code).toBe(status.UNAVAILABLE);
    expect(early.error?.details).toContain("recovering");

    release();
    await running.flusher.ready;
    expect(await check("")).toMatchObject({ status: ServingStatus.SERVING });
    expect(await check("vulnsub.v1.Ingest")).toMatchObject({ status: ServingStatus.SERVING });
  });

  test("unknown service is NOT_FOUND", async () => {
    const result = await check("no.such.Service");
    expect((result as ServiceError).code).toBe(status.NOT_FOUND);
  });

  test("Watch sees every transition", async () => {
    const client = connect(healthProto.Health);
    const call = client.watch?.({ service: "" }) as NodeJS.ReadableStream;
    const seen: number[] = [];
    call.on("error", () => undefined);
    const servingSeen = new Promise<void>((resolve) => {
      call.on("data", (response: { status: number }) => {
        seen.push(response.status);
        if (response.status === ServingStatus.SERVING) resolve();
      });
    });
    const ended = new Promise((resolve) => call.on("end", resolve));

    for (let i = 0; i < 100 && seen.length === 0; i++) await Bun.sleep(10);
    release();
    await servingSeen;
    await running.flusher.stop();
    await ended;
    expect(seen).toEqual([
      ServingStatus.NOT_SERVING,
      ServingStatus.SERVING,
      ServingStatus.NOT_SERVING,
    ]);
  });
});

type ReflectionCall = ClientDuplexStream<unknown, reflectionV1.ServerReflectionResponse>;

/** Sends one reflection request and returns the first response. */
async function reflect(
  service: typeof reflectionV1.ServerReflection | typeof reflectionV1alpha.ServerReflection,
  messageRequest: { case: string; value: string },
) {
  const client = connect(service);
  const call = client.serverReflectionInfo?.() as ReflectionCall;
  const response = new Promise<reflectionV1.ServerReflectionResponse>((resolve) =>
    call.once("data", resolve),
  );
  call.write({ host: "", messageRequest });
  const result = await response;
  call.end();
  return result.messageResponse;
}

function decodeFiles(response: Awaited<ReturnType<typeof reflect>>) {
  if (response.case !== "fileDescriptorResponse") return [];
  return response.value.fileDescriptorProto.map((bytes) =>
    fromBinary(FileDescriptorProtoSchema, bytes),
  );
}

describe("reflection", () => {
  test("lists the services", async () => {
    const response = await reflect(reflectionV1.ServerReflection, {
      case: "listServices",
      value: "",
    });
    const names =
      response.case === "listServicesResponse" ? response.value.service.map((s) => s.name) : [];
    expect(names).toContain("vulnsub.v1.Ingest");
    expect(names).toContain("grpc.health.v1.Health");
    expect(names).toContain("grpc.reflection.v1.ServerReflection");
    expect(names).toContain("grpc.reflection.v1alpha.ServerReflection");
  });

  test("describes vulnsub.v1.Ingest", async () => {
    const files = decodeFiles(
      await reflect(reflectionV1.ServerReflection, {
        case: "fileContainingSymbol",
        value: "vulnsub.v1.Ingest",
      }),
    );
    const ingest = files.find((file) => file.name === "vulnsub/v1/ingest.proto");
    const service = ingest?.service.find((s) => s.name === "Ingest");
    expect(service?.method.map((m) => m.name)).toEqual(["Stream", "GetJobState"]);
    expect(ingest?.messageType.map((m) => m.name)).toContain("PageBatch");
  });

  test("finds a method and a file by name", async () => {
    const byMethod = decodeFiles(
      await reflect(reflectionV1alpha.ServerReflection, {
        case: "fileContainingSymbol",
        value: "grpc.health.v1.Health.Check",
      }),
    );
    const byName = decodeFiles(
      await reflect(reflectionV1.ServerReflection, {
        case: "fileByFilename",
        value: "grpc/health/v1/health.proto",
      }),
    );
    expect(byMethod[0]?.name).toBe("grpc/health/v1/health.proto");
    expect(byName[0]?.package).toBe("grpc.health.v1");
  });

  test("unknown symbol is NOT_FOUND", async () => {
    const response = await reflect(reflectionV1.ServerReflection, {
      case: "fileContainingSymbol",
      value: "no.such.Symbol",
    });
    expect(response.case).toBe("errorResponse");
    expect(response.case === "errorResponse" && response.value.errorCode).toBe(
      status.NOT_FOUND,
    );
  });
});
