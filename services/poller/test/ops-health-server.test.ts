import { afterEach, describe, expect, test } from "bun:test";
import {
  credentials,
  makeGenericClientConstructor,
  type Client,
  type ClientDuplexStream,
} from "@grpc/grpc-js";
import {
  checkHealth,
  createGrpcServiceDefinition,
  createHealthService,
  ServingStatus,
  type HealthService,
} from "@vulnsub/shared";
import * as reflectionV1 from "@vulnsub/shared/src/gen/grpc/reflection/v1/reflection_pb.ts";
import { startHealthServer, type HealthServer } from "../src/health-server.ts";

const JOB_SERVICE = "vulnsub.poller.qualys.default";

let server: HealthServer | undefined;
let health: HealthService | undefined;
let client: Client | undefined;

afterEach(async () => {
  client?.close();
  health?.close();
  await server?.close();
  client = undefined;
  health = undefined;
  server = undefined;
});

async function start() {
  health = createHealthService({
    "": ServingStatus.SERVING,
    [JOB_SERVICE]: ServingStatus.SERVING,
  });
  server = await startHealthServer("127.0.0.1:0", health);
  return server.address;
}

type ReflectionCall = ClientDuplexStream<
  unknown,
  reflectionV1.ServerReflectionResponse
>;

async function listServices(address: string): Promise<string[]> {
  const Constructor = makeGenericClientConstructor(
    createGrpcServiceDefinition(reflectionV1.ServerReflection),
    "ServerReflection",
  );
  client = new Constructor(address, credentials.createInsecure());
  const methods = client as unknown as Record<string, () => ReflectionCall>;
  const call = methods.serverReflectionInfo?.call(client) as ReflectionCall;
  const response = new Promise<reflectionV1.ServerReflectionResponse>(
    (resolve) => call.once("data", resolve),
  );
  call.write({ host: "", messageRequest: { case: "listServices", value: "" } });
  const { messageResponse } = await response;
  call.end();
  if (messageResponse.case !== "listServicesResponse") return [];
  return messageResponse.value.service.map((service) => service.name);
}

describe("poller health server", () => {
  test("Check follows the health service", async () => {
    const address = await start();

    const before = await checkHealth(address, JOB_SERVICE);
    health?.setStatus(JOB_SERVICE, ServingStatus.NOT_SERVING);
    const after = await checkHealth(address, JOB_SERVICE);
    const unknown = await checkHealth(address, "vulnsub.poller.x.y").catch(
      (error: { code?: number }) => error.code,
    );

    expect(before).toBe("SERVING");
    expect(after).toBe("NOT_SERVING");
    expect(unknown).toBe(5);
  });

  test("reflection lists health and reflection", async () => {
    const address = await start();

    const names = await listServices(address);

    expect(names).toContain("grpc.health.v1.Health");
    expect(names).toContain("grpc.reflection.v1.ServerReflection");
  });

  test("taken address is an error", async () => {
    const address = await start();

    const second = startHealthServer(address, createHealthService());

    await expect(second).rejects.toThrow(`health server cannot listen on ${address}`);
  });
});
