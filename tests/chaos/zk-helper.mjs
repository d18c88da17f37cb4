// The chaos suite's own ZooKeeper client, in a process of its own (see SuiteClient in cluster.ts):
// node zk-helper.mjs <path of @zkgrid/core's dist/index.js> <connect string>
// Requests arrive as IPC messages { id, op, path, data?, mode? }; each gets { id, ok, value | error }.
const [corePath, connectString] = process.argv.slice(2);
const { connect } = await import(corePath);

const client = await connect({
  connectString,
  sessionTimeoutMs: 10_000,
  opTimeoutMs: 10_000,
  connectTimeoutMs: 20_000,
});

const stat = (s) => ({ version: s.version, ephemeralOwner: s.ephemeralOwner, ctime: s.ctime });

const ops = {
  get: async ({ path }) => {
    const got = await client.get(path);
    return { data: got.data.toString("base64"), stat: stat(got.stat) };
  },
  children: ({ path }) => client.getChildren(path),
  exists: async ({ path }) => {
    const s = await client.exists(path);
    return s ? stat(s) : null;
  },
  ensurePath: ({ path }) => client.ensurePath(path),
  createProtected: ({ path, data, mode }) => client.createProtected(path, Buffer.from(data, "base64"), mode),
  create: ({ path, data, mode }) => client.create(path, Buffer.from(data, "base64"), mode),
  set: async ({ path, data }) => stat(await client.set(path, Buffer.from(data, "base64"))),
};

process.on("message", (request) => {
  const op = ops[request.op];
  Promise.resolve(op ? op(request) : Promise.reject(new Error(`unknown op ${request.op}`))).then(
    (value) => process.send?.({ id: request.id, ok: true, value }),
    (error) =>
      process.send?.({ id: request.id, ok: false, error: { code: error?.code, message: String(error) } }),
  );
});
process.on("disconnect", () => process.exit(0));
process.send?.({ ready: true });
