import { createRegistry, toBinary, type DescFile, type Registry } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import {
  status as grpcStatus,
  type ServerDuplexStream,
  type ServiceDefinition,
  type UntypedServiceImplementation,
} from "@grpc/grpc-js";
import { file_grpc_health_v1_health } from "./gen/grpc/health/v1/health_pb.ts";
import * as reflectionV1 from "./gen/grpc/reflection/v1/reflection_pb.ts";
import * as reflectionV1alpha from "./gen/grpc/reflection/v1alpha/reflection_pb.ts";
import { createGrpcServiceDefinition } from "./grpc-service.ts";

/**
 * gRPC server reflection (grpc.reflection.v1 and v1alpha), built from
 * protobuf-es file descriptors, so tools such as grpcurl can list and
 * describe the services without .proto files. Supports list_services,
 * file_by_filename and file_containing_symbol; any other request gets an
 * error_response with NOT_FOUND (gRPC code 5).
 *
 * The files given are served with their transitive dependencies, together
 * with the health and the two reflection files.
 */
export interface ReflectionService {
  /** Both reflection services, ready for `server.addService`. */
  readonly services: readonly {
    definition: ServiceDefinition;
    implementation: UntypedServiceImplementation;
  }[];
}

interface ReflectionRequest {
  host: string;
  messageRequest: { case: string | undefined; value?: unknown };
}

type ReflectionResponse =
  | { case: "fileDescriptorResponse"; value: { fileDescriptorProto: Uint8Array[] } }
  | { case: "listServicesResponse"; value: { service: { name: string }[] } }
  | { case: "errorResponse"; value: { errorCode: number; errorMessage: string } };

export function createReflectionService(
  files: readonly DescFile[],
): ReflectionService {
  const all = withDependencies([
    ...files,
    file_grpc_health_v1_health,
    reflectionV1.file_grpc_reflection_v1_reflection,
    reflectionV1alpha.file_grpc_reflection_v1alpha_reflection,
  ]);
  const registry = createRegistry(...all);
  const filesByName = new Map(all.map((file) => [file.proto.name, file]));
  const serviceNames = all.flatMap((file) =>
    file.services.map((service) => service.typeName),
  );

  const answer = (request: ReflectionRequest): ReflectionResponse => {
    const { case: kind, value } = request.messageRequest;
    if (kind === "listServices") {
      return {
        case: "listServicesResponse",
        value: { service: serviceNames.map((name) => ({ name })) },
      };
    }
    const file =
      kind === "fileByFilename"
        ? filesByName.get(String(value))
        : kind === "fileContainingSymbol"
          ? fileOfSymbol(registry, String(value))
          : undefined;
    if (!file) {
      const what = kind ? `${kind} ${JSON.stringify(value)}` : "empty request";
      return {
        case: "errorResponse",
        value: { errorCode: grpcStatus.NOT_FOUND, errorMessage: `not found: ${what}` },
      };
    }
    return {
      case: "fileDescriptorResponse",
      value: {
        fileDescriptorProto: withDependencies([file]).map((desc) =>
          toBinary(FileDescriptorProtoSchema, desc.proto),
        ),
      },
    };
  };

  const handler =
    () => (call: ServerDuplexStream<ReflectionRequest, unknown>) => {
      call.on("data", (request: ReflectionRequest) => {
        call.write({
          validHost: request.host,
          originalRequest: request,
          messageResponse: answer(request),
        });
      });
      call.on("end", () => call.end());
    };

  return {
    services: [reflectionV1.ServerReflection, reflectionV1alpha.ServerReflection].map(
      (service) => ({
        definition: createGrpcServiceDefinition(service),
        implementation: {
          serverReflectionInfo: handler(),
        } as UntypedServiceImplementation,
      }),
    ),
  };
}

/**
 * Finds the file of a fully qualified symbol: a service, message, enum or
 * extension, or a method, field or enum value named under one of them.
 */
function fileOfSymbol(registry: Registry, symbol: string) {
  const name = symbol.replace(/^\./, "");
  const desc = registry.get(name);
  if (desc) return desc.file;
  const parent = registry.get(name.slice(0, Math.max(0, name.lastIndexOf("."))));
  if (!parent) return undefined;
  if (parent.kind === "service" && parent.methods.some((m) => m.name === lastPart(name))) {
    return parent.file;
  }
  if (parent.kind === "message" && parent.fields.some((f) => f.name === lastPart(name))) {
    return parent.file;
  }
  return undefined;
}

function lastPart(name: string): string {
  return name.slice(name.lastIndexOf(".") + 1);
}

/** Returns the files and all their transitive dependencies, each once. */
function withDependencies(files: readonly DescFile[]): DescFile[] {
  const seen = new Map<string, DescFile>();
  const visit = (file: DescFile) => {
    if (seen.has(file.proto.name)) return;
    seen.set(file.proto.name, file);
    for (const dependency of file.dependencies) visit(dependency);
  };
  for (const file of files) visit(file);
  return [...seen.values()];
}
