// node-pg-migrate 8 publishes its types only through package.json "exports", which the
// project's `moduleResolution: node` does not read; point the package name at them.
declare module 'node-pg-migrate' {
  export * from 'node-pg-migrate/dist/bundle/index';
}
