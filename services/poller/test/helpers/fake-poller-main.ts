// A poller process whose tenable adapter is the fake page adapter reading
// GET /pages/N from TENABLE_BASE_URL; FAKE_PAGES sets the page count. Used
// by the process tests to run the real main.ts wiring (config, Redis, job
// lock, flusher stream, signals) without a vendor simulator.
import { vendorRegistry } from "../../src/adapters/index.ts";
import { runPoller } from "../../src/main.ts";
import { createFakeAdapter, fetchPageOverHttp } from "./fake-adapter.ts";
import { fakeProfile } from "./fake-profile.ts";

const registry = {
  ...vendorRegistry,
  tenable: {
    profile: fakeProfile,
    defaultBaseUrl: "http://127.0.0.1:9",
    optionSpecs: {},
    createAdapter: () =>
      createFakeAdapter({
        pageCount: () => Number(process.env.FAKE_PAGES ?? "3"),
        fetchPage: fetchPageOverHttp,
      }),
  },
};

process.exit(
  await runPoller({ argv: process.argv.slice(2), env: process.env, registry }),
);
