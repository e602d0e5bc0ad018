#!/usr/bin/env node
// Runs a Bun script on a machine that may have only Node.js and npm:
// `node scripts/bootstrap.mjs scripts/demo.ts [args]`.
//
// 1. Finds bun: on PATH, else in .tools/bun-<version>, else installs it
//    there from the npm registry (package "bun" and its platform packages
//    "@oven/bun-<os>-<arch>[-musl][-baseline]").
// 2. Runs `bun install --frozen-lockfile` when node_modules is missing or
//    older than bun.lock.
// 3. Runs `bun <script> [args]` with bun's folder first on PATH, forwards
//    SIGINT, SIGTERM and SIGHUP to it, and exits with its exit code.
// `--bun-path` as the only argument prints the path of bun after step 1.
//
// The install passes --ignore-scripts, so it works whether or not npm's
// allow-scripts policy would run the "bun" package's postinstall. Instead
// of that postinstall, this script picks the platform package whose binary
// runs here (glibc or musl, with or without AVX2) and links it.
//
// Its own messages and the output of npm and bun install go to stderr, so
// stdout carries only the script's output.
//
// Plain Node.js ESM with no dependencies, because it runs before any
// dependency is installed.
import { spawn, spawnSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
} from "node:fs";
import { delimiter, dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * Bun version installed when PATH has none at least this new. Older 1.3
 * releases can splice a retried response into a body after a mid-body
 * connection reset (fetch on a reused keep-alive connection), which the
 * vendor adapters must never see.
 */
const BUN_VERSION = "1.4.5";
/** Maximum wait for npm or bun install, so a stalled registry fails. */
const INSTALL_TIMEOUT_MS = 600_000;

const rootDir = dirname(dirname(fileURLToPath(import.meta.url)));
const toolsDir = join(rootDir, ".tools");
const isWindows = process.platform === "win32";
const exeSuffix = isWindows ? ".exe" : "";

main();

function main() {
  const args = process.argv.slice(2);
  if (args.length === 0) {
    console.error(
      "usage: node scripts/bootstrap.mjs <script.ts | bun argument> [args]\n" +
        "       node scripts/bootstrap.mjs --bun-path",
    );
    process.exit(2);
  }

  const bunPath = findBunOnPath() ?? findToolsBun() ?? installBun();
  if (args[0] === "--bun-path") {
    console.log(bunPath);
    return;
  }
  const env = withBunOnPath(process.env, dirname(bunPath));
  if (args[0] !== "--version") ensureDependencies(bunPath, env);
  runBun(bunPath, args, env);
}

/** Returns the absolute path of a working bun on PATH, or undefined. */
function findBunOnPath() {
  for (const folder of (process.env.PATH ?? "").split(delimiter)) {
    if (!folder) continue;
    const candidate = join(folder, `bun${exeSuffix}`);
    if (!existsSync(candidate)) continue;
    const version = bunVersion(candidate);
    if (!version) continue;
    if (isOlder(version)) {
      console.error(
        `bootstrap: ${candidate} is bun ${version}; vulnsub needs ` +
          `${BUN_VERSION} or newer, so it uses its own copy in .tools`,
      );
      continue;
    }
    return candidate;
  }
  return undefined;
}

function findToolsBun() {
  const candidate = join(bunHome(), "bin", `bun${exeSuffix}`);
  return bunVersion(candidate) === BUN_VERSION ? candidate : undefined;
}

function bunHome() {
  return join(toolsDir, `bun-${BUN_VERSION}`);
}

/**
 * Installs bun into .tools/bun-<version> and returns its path. The install
 * goes to a private folder first and is renamed into place, so two
 * bootstraps started at once do not break each other.
 */
function installBun() {
  const staging = join(toolsDir, `bun-${BUN_VERSION}.partial-${process.pid}`);
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true });
  console.error(
    `bootstrap: bun not found on PATH; installing bun@${BUN_VERSION} ` +
      `from npm into ${relative(process.cwd(), bunHome()) || "."}`,
  );

  const npm = spawnSync(
    isWindows ? "npm.cmd" : "npm",
    [
      "install",
      "--prefix",
      staging,
      "--no-save",
      "--ignore-scripts",
      "--no-audit",
      "--no-fund",
      "--loglevel=error",
      `bun@${BUN_VERSION}`,
    ],
    { stdio: ["ignore", 2, 2], shell: isWindows, timeout: INSTALL_TIMEOUT_MS },
  );
  if (npm.status !== 0) {
    rmSync(staging, { recursive: true, force: true });
    fail(
      `npm install bun@${BUN_VERSION} failed (${describeResult(npm)}); ` +
        "install Bun yourself (https://bun.sh) and run this again",
    );
  }

  const binary = pickPlatformBinary(staging);
  linkBinaries(staging, binary);
  moveIntoPlace(staging);
  const installed = join(bunHome(), "bin", `bun${exeSuffix}`);
  console.error(`bootstrap: installed ${installed}`);
  return installed;
}

/**
 * Returns the relative path (from `prefix`) of the first platform binary
 * that runs here and prints the expected version. On Linux npm installs
 * the glibc, musl and baseline (no AVX2) builds alike, because all match
 * the OS and CPU. So running each one is the reliable test.
 */
function pickPlatformBinary(prefix) {
  const scopeDir = join(prefix, "node_modules", "@oven");
  const os =
    { win32: "windows", darwin: "darwin" }[process.platform] ??
    process.platform;
  const arch = { x64: "x64", arm64: "aarch64" }[process.arch] ?? process.arch;
  const prefixName = `bun-${os}-${arch}`;
  const names = existsSync(scopeDir)
    ? readdirSync(scopeDir).filter(
        (name) => name === prefixName || name.startsWith(`${prefixName}-`),
      )
    : [];
  names.sort((a, b) => platformRank(a) - platformRank(b));

  for (const name of names) {
    const path = join("node_modules", "@oven", name, "bin", `bun${exeSuffix}`);
    const absolute = join(prefix, path);
    if (!existsSync(absolute)) continue;
    if (!isWindows) chmodSync(absolute, 0o755);
    if (bunVersion(absolute) === BUN_VERSION) return path;
  }
  rmSync(prefix, { recursive: true, force: true });
  return fail(
    `no @oven/${prefixName}* package from npm runs on this machine ` +
      `(found: ${names.join(", ") || "none"}); install Bun yourself ` +
      "(https://bun.sh) and run this again",
  );
}

/** Orders platform packages: native libc first, AVX2 build before baseline. */
function platformRank(name) {
  const muslHost = isMuslHost();
  const isMusl = name.includes("-musl");
  const libcRank = isMusl === muslHost ? 0 : 2;
  return libcRank + (name.endsWith("-baseline") ? 1 : 0);
}

function isMuslHost() {
  if (process.platform !== "linux") return false;
  const header = process.report?.getReport()?.header;
  return !header?.glibcVersionRuntime;
}

/** Creates <prefix>/bin/bun and bunx pointing at the platform binary. */
function linkBinaries(prefix, binaryPath) {
  const binDir = join(prefix, "bin");
  mkdirSync(binDir, { recursive: true });
  const target = join("..", binaryPath);
  for (const name of ["bun", "bunx"]) {
    const link = join(binDir, `${name}${exeSuffix}`);
    rmSync(link, { force: true });
    // Bun acts as bunx when started under that name.
    symlinkSync(target, link);
  }
}

function moveIntoPlace(staging) {
  try {
    renameSync(staging, bunHome());
  } catch (error) {
    // Another bootstrap finished first; keep its install.
    rmSync(staging, { recursive: true, force: true });
    if (!findToolsBun()) throw error;
  }
}

/** Runs bun install when node_modules is missing or older than bun.lock. */
function ensureDependencies(bunPath, env) {
  const modulesDir = join(rootDir, "node_modules");
  const lockPath = join(rootDir, "bun.lock");
  if (!existsSync(lockPath)) return;
  if (existsSync(modulesDir)) {
    const modulesMs = statSync(modulesDir).mtimeMs;
    if (modulesMs >= statSync(lockPath).mtimeMs) return;
  }

  console.error("bootstrap: running bun install --frozen-lockfile");
  const install = spawnSync(bunPath, ["install", "--frozen-lockfile"], {
    cwd: rootDir,
    env,
    stdio: ["ignore", 2, 2],
    timeout: INSTALL_TIMEOUT_MS,
  });
  if (install.status !== 0) {
    fail(`bun install --frozen-lockfile failed (${describeResult(install)})`);
  }
  // bun install leaves node_modules untouched when nothing changed, so mark
  // it fresh; otherwise every run would install again.
  const now = new Date();
  utimesSync(modulesDir, now, now);
}

function runBun(bunPath, args, env) {
  const child = spawn(bunPath, args, {
    cwd: process.cwd(),
    env,
    stdio: "inherit",
  });
  const forward = (signal) => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill(signal);
    }
  };
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
    process.on(signal, () => forward(signal));
  }

  child.on("error", (error) => fail(`cannot run ${bunPath}: ${error.message}`));
  child.on("exit", (code, signal) => {
    if (code !== null) process.exit(code);
    process.exit(128 + (signalNumber(signal) ?? 1));
  });
}

/** Describes how a spawnSync call ended: "exit 1", "timed out". */
function describeResult(result) {
  if (result.error?.code === "ETIMEDOUT") {
    return `timed out after ${INSTALL_TIMEOUT_MS / 1000} s`;
  }
  if (result.error) return result.error.message;
  return result.signal ? `signal ${result.signal}` : `exit ${result.status}`;
}

function signalNumber(signal) {
  return { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 }[signal];
}

/** Returns the version a bun binary prints, or undefined when it fails. */
function bunVersion(path) {
  const result = spawnSync(path, ["--version"], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "ignore"],
    timeout: 30_000,
  });
  if (result.status !== 0) return undefined;
  return result.stdout.trim() || undefined;
}

/** Returns true when `version` (x.y.z) is older than BUN_VERSION. */
function isOlder(version) {
  const have = version.split(".").map(Number);
  const want = BUN_VERSION.split(".").map(Number);
  for (let i = 0; i < 3; i++) {
    const diff = (have[i] ?? 0) - (want[i] ?? 0);
    if (diff !== 0) return diff < 0;
  }
  return false;
}

function withBunOnPath(env, binDir) {
  return { ...env, PATH: `${binDir}${delimiter}${env.PATH ?? ""}` };
}

function fail(message) {
  console.error(`bootstrap: ${message}`);
  process.exit(1);
}
