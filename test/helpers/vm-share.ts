// The kernel VM sees one host directory (IPVSVM_SHARE, mounted at the same path). A worktree whose
// node_modules links to another checkout's needs the directory holding both shared; a clean clone (CI)
// shares just the project. Commands should `cd` to the project first (the VM starts in the share).
import { existsSync, realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";

export const projectRoot = realpathSync(fileURLToPath(new URL("../..", import.meta.url)));

export function vmShare(root = projectRoot): string {
  let modules: string;
  try {
    modules = realpathSync(`${root}/node_modules`);
  } catch {
    return root;
  }
  if (modules.startsWith(`${root}/`)) return root;
  const x = root.split("/"),
    y = modules.split("/");
  let i = 0;
  while (i < x.length && x[i] === y[i]) i++;
  return x.slice(0, i).join("/") || "/";
}

/** Why the kernel VM cannot run here ("" when it can): its script from ../shared, and qemu, which it installs. */
export function vmMissing(root = projectRoot): string {
  const script = `${root}/../shared/ipvs-vm/ipvs-vm.sh`;
  return existsSync(script) ? "" : `${script} is missing: the kernel VM from ../shared is needed`;
}
