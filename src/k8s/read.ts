// kubectl's output as input: `kubectl get services,endpointslices -A -o json` (a List), `-o yaml` (a List in
// YAML), or multi-document YAML of single objects (what people keep in git). Items are flattened out of Lists
// (nested Lists too); every problem is a K8sInputError naming the document or object and field.
import { parseAllDocuments } from "yaml";
import { K8sInputError } from "./errors.ts";

interface ReadResult {
  objects: Record<string, unknown>[];
  errors: K8sInputError[];
}

const LIST_KINDS = /List$/;

function flatten(v: unknown, where: string, out: Record<string, unknown>[], errors: K8sInputError[]): void {
  if (v === null || v === undefined) return; // an empty YAML document
  if (Array.isArray(v)) {
    v.forEach((x, i) => flatten(x, `${where}[${i}]`, out, errors));
    return;
  }
  if (typeof v !== "object") {
    errors.push(new K8sInputError(where, "", `expected a Kubernetes object, got ${JSON.stringify(v).slice(0, 60)}`));
    return;
  }
  const o = v as Record<string, unknown>;
  if (typeof o.kind === "string" && LIST_KINDS.test(o.kind) && Array.isArray(o.items)) {
    // a typed list (ServiceList, EndpointSliceList) leaves kind/apiVersion off its items
    const itemKind = o.kind === "List" ? undefined : o.kind.replace(/List$/, "");
    o.items.forEach((it, i) => {
      if (itemKind && it && typeof it === "object" && !(it as { kind?: unknown }).kind)
        (it as Record<string, unknown>).kind = itemKind;
      flatten(it, `${where}.items[${i}]`, out, errors);
    });
    return;
  }
  if (typeof o.kind !== "string") {
    errors.push(new K8sInputError(where, "kind", "missing"));
    return;
  }
  out.push(o);
}

/** Read kubectl JSON or YAML output. */
export function readObjects(text: string, source = "input"): ReadResult {
  const objects: Record<string, unknown>[] = [];
  const errors: K8sInputError[] = [];
  const t = text.trimStart();
  if (t.startsWith("{") || t.startsWith("[")) {
    try {
      flatten(JSON.parse(t), source, objects, errors);
      return { objects, errors };
    } catch {
      /* not one JSON value: fall through to YAML, which also reads JSON and says where it broke */
    }
  }
  const docs = parseAllDocuments(text, { uniqueKeys: false });
  const list = Array.isArray(docs) ? docs : [docs];
  list.forEach((d, i) => {
    const where = list.length > 1 ? `${source} document ${i + 1}` : source;
    if (d.errors.length) {
      const e = d.errors[0];
      const line = e.linePos?.[0] ? ` at line ${e.linePos[0].line}, column ${e.linePos[0].col}` : "";
      errors.push(new K8sInputError(where, "", `malformed YAML${line}: ${e.message.split("\n")[0]}`));
      return;
    }
    flatten(d.toJS({ maxAliasCount: 100 }), where, objects, errors);
  });
  return { objects, errors };
}
