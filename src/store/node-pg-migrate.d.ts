// node-pg-migrate 9 publishes its types under package.json "exports", which this project's `moduleResolution: node`
// does not read; this points the bare specifier at the same declarations.
declare module 'node-pg-migrate' {
  export * from 'node-pg-migrate/dist/bundle/index';
}
