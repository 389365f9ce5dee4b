export * from './payload-codec';
export { startCodecServer, codecCorsOriginsFor, type CodecServer, type CodecServerOptions } from './server';
