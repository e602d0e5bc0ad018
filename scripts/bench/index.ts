// Runs one benchmark: `bun run bench <name> [args]`. Each bench is a
// script in this folder that prints its figures and the machine it ran on;
// none of them is a test. `--smoke` runs a tiny size so CI keeps them
// working.
import { readdirSync } from "node:fs";
import { join } from "node:path";

const folder = import.meta.dir;
const names = readdirSync(folder)
  .filter((file) => file.endsWith(".ts") && file !== "index.ts" && !file.startsWith("_"))
  .map((file) => file.slice(0, -3))
  .sort();
const [name, ...args] = process.argv.slice(2);

if (!name || !names.includes(name)) {
  console.error(`usage: bun run bench <name> [--smoke] [args]\nbenches: ${names.join(", ")}`);
  process.exit(name ? 1 : 0);
}

const child = Bun.spawn(["bun", join(folder, `${name}.ts`), ...args], {
  stdio: ["inherit", "inherit", "inherit"],
});
process.exit(await child.exited);
