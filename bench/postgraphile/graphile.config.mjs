// PostGraphile 5 (amber preset) on the benchmark's own `bench` schema: the comparison target
// of issue 20. Production settings: no GraphiQL, no explain, no watch mode. bench/run.py sets
// DATABASE_URL and PORT.
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";
import { makePgService } from "postgraphile/adaptors/pg";

/** @type {GraphileConfig.Preset} */
const preset = {
  extends: [PostGraphileAmberPreset],
  // The gateway has no GraphQL subscriptions, and its `subscriptions` table would clash with
  // the root Subscription type's name.
  disablePlugins: ["SubscriptionPlugin"],
  pgServices: [
    makePgService({
      connectionString: process.env.DATABASE_URL,
      schemas: ["bench"],
    }),
  ],
  grafserv: {
    host: "127.0.0.1",
    port: Number(process.env.PORT ?? 5678),
    graphiql: false,
    watch: false,
  },
  grafast: { explain: false },
};

export default preset;
