// Validate prometheus-operator objects (PodMonitor, ServiceMonitor, PrometheusRule, ...)
// offline against the schemas of @kubernetes-models/prometheus-operator (pinned in
// package.json / package-lock.json; scripts/k8s-crd-tools.sh installs it):
//
//   node tests/k8s/crd/validate.mjs <node_modules directory> <objects.json>
//
// objects.json: a JSON array of objects. Each is checked twice: the package's own model
// (new Kind(obj).validate(), what a TypeScript user of the package runs) and its compiled
// JSON schema with every field read tracked: a field the schema never reads is a field the
// CRD does not know (the generated schemas do not reject unknown fields themselves; a
// cluster's apiserver would prune or refuse them). Prints one line per failure and a
// summary; exits 1 when anything fails.
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import path from "node:path";

const [modulesDir, objectsFile] = process.argv.slice(2);
if (!modulesDir || !objectsFile) {
  console.error("usage: node validate.mjs <node_modules directory> <objects.json>");
  process.exit(2);
}
const pkg = path.join(modulesDir, "@kubernetes-models", "prometheus-operator");
const version = JSON.parse(readFileSync(path.join(pkg, "package.json"), "utf8")).version;
const objects = JSON.parse(readFileSync(objectsFile, "utf8"));

// Reads of an object's own fields, by JSON pointer, through a Proxy.
function tracked(value, pointer, seen) {
  if (value === null || typeof value !== "object") return value;
  return new Proxy(value, {
    get(target, key, receiver) {
      const result = Reflect.get(target, key, receiver);
      if (typeof key === "string" && Object.hasOwn(target, key)) {
        const child = `${pointer}/${key}`;
        seen.add(child);
        return tracked(result, child, seen);
      }
      return result;
    },
  });
}

function pointers(value, pointer, out) {
  if (value !== null && typeof value === "object") {
    for (const key of Object.keys(value)) {
      out.push(`${pointer}/${key}`);
      pointers(value[key], `${pointer}/${key}`, out);
    }
  }
  return out;
}

let failures = 0;
for (const obj of objects) {
  const [group, apiVersion] = String(obj.apiVersion).split("/");
  const name = `${obj.kind}/${obj.metadata?.name}`;
  if (group !== "monitoring.coreos.com") {
    failures++;
    console.log(`FAIL ${name}: not a prometheus-operator object (${obj.apiVersion})`);
    continue;
  }
  let Model, schema;
  try {
    const dir = path.join(pkg, group, apiVersion);
    Model = (await import(pathToFileURL(path.join(dir, `${obj.kind}.js`)).href))[obj.kind];
    const file = `ComGithubPrometheusOperatorPrometheusOperatorPkgApisMonitoring${
      apiVersion[0].toUpperCase() + apiVersion.slice(1)}${obj.kind}.js`;
    schema = (await import(pathToFileURL(path.join(pkg, "_schemas", file)).href)).validate;
  } catch (err) {
    failures++;
    console.log(`NOSCHEMA ${name}: ${obj.apiVersion} ${obj.kind} (${err.message.split("\n")[0]})`);
    continue;
  }
  try {
    new Model(obj).validate();
  } catch (err) {
    failures++;
    console.log(`FAIL ${name}: ${err.message}`);
  }
  const seen = new Set();
  if (!schema(tracked(obj, "", seen))) {
    failures++;
    console.log(`FAIL ${name}: ${JSON.stringify(schema.errors)}`);
  }
  const unknown = pointers(obj, "", []).filter((p) => !seen.has(p));
  // a map's keys are read through their values; an unknown field's children are not
  // reported again
  const reported = unknown.filter((p) => !unknown.some((q) => p !== q && p.startsWith(`${q}/`)));
  for (const field of reported) {
    failures++;
    console.log(`UNKNOWN ${name}: field ${field} is not in the ${obj.kind} schema`);
  }
}
console.log(
  `validated ${objects.length} objects against @kubernetes-models/prometheus-operator ${version}: ${failures} failures`,
);
process.exit(failures ? 1 : 0);
