import {
  create,
  fromBinary,
  toBinary,
  type DescMessage,
  type DescMethod,
  type DescService,
  type MessageShape,
} from "@bufbuild/protobuf";
import type { ServiceDefinition } from "@grpc/grpc-js";

/** Request codecs that replace protobuf-es, by method local name. */
export interface RequestCodecs {
  decode?: Record<string, (bytes: Buffer) => unknown>;
  encode?: Record<string, (message: never) => Buffer>;
}

/**
 * Builds a grpc-js service definition from a protobuf-es service
 * descriptor, so both services share one source of truth for paths and
 * serialisation. Method keys are the lowerCamelCase local names that
 * protobuf-es gives (`stream`, `getJobState`). `codecs` replaces the
 * request codec of a method: a server decoder that keeps large string
 * fields as bytes, a client encoder that sizes its buffer once.
 */
export function createGrpcServiceDefinition(
  service: DescService,
  codecs: RequestCodecs = {},
): ServiceDefinition {
  const definition: Record<string, object> = {};
  for (const method of service.methods) {
    const decode = codecs.decode?.[method.localName];
    const encode = codecs.encode?.[method.localName];
    definition[method.localName] = {
      ...createMethodDefinition(service, method),
      ...(decode ? { requestDeserialize: decode } : {}),
      ...(encode ? { requestSerialize: encode } : {}),
    };
  }
  return definition as ServiceDefinition;
}

function createMethodDefinition(service: DescService, method: DescMethod) {
  return {
    path: `/${service.typeName}/${method.name}`,
    requestStream:
      method.methodKind === "client_streaming" ||
      method.methodKind === "bidi_streaming",
    responseStream:
      method.methodKind === "server_streaming" ||
      method.methodKind === "bidi_streaming",
    requestSerialize: serializer(method.input),
    requestDeserialize: deserializer(method.input),
    responseSerialize: serializer(method.output),
    responseDeserialize: deserializer(method.output),
    originalName: method.localName,
  };
}

function serializer<Desc extends DescMessage>(schema: Desc) {
  return (message: MessageShape<Desc>): Buffer => {
    const bytes = toBinary(schema, create(schema, message));
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  };
}

function deserializer<Desc extends DescMessage>(schema: Desc) {
  return (bytes: Buffer): MessageShape<Desc> => fromBinary(schema, bytes);
}
