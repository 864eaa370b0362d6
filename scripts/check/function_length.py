#!/usr/bin/env python3
"""function_length.py [MAX]: the Rust functions outside tests longer than MAX lines (60).

Reads every tracked or new .rs file but those under a tests/ folder; skips #[cfg(test)]
modules and #[test] functions. A function's length runs from its `fn` line to its
closing brace. Comments, strings and char literals are blanked before braces are
matched, so a brace inside them does not count. Exits 1 when it lists any."""
import re
import subprocess
import sys


def blank(src):
    """`src` with comments, strings and char literals replaced by spaces (newlines kept)."""
    out, i, n = [], 0, len(src)
    spaces = lambda text: re.sub(r"[^\n]", " ", text)
    while i < n:
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
        elif src.startswith("/*", i):
            depth, j = 0, i
            while j < n:
                if src.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif src.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                    if depth == 0:
                        break
                else:
                    j += 1
        elif (m := re.match(r'(b?r)(#*)"', src[i:])) and (i == 0 or not (src[i - 1].isalnum() or src[i - 1] == "_")):
            end = src.find('"' + m.group(2), i + len(m.group(0)))
            j = n if end < 0 else end + 1 + len(m.group(2))
        elif src[i] == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            j += 1
        elif m := re.match(r"b?'(\\.|\\u\{[0-9a-fA-F]+\}|\\x[0-9a-fA-F]{2}|[^\\'\n])'", src[i:]):
            j = i + len(m.group(0))
        else:
            out.append(src[i])
            i += 1
            continue
        out.append(spaces(src[i:j]))
        i = j
    return "".join(out)


def closing(text, open_at):
    depth = 0
    for j in range(open_at, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return j
    return len(text) - 1


def long_functions(src, limit):
    text = blank(src)
    line = lambda pos: text.count("\n", 0, pos) + 1
    skipped = []
    for m in re.finditer(r"#\[cfg\(test\)\]\s*(pub(\([^)]*\))?\s+)?mod\s+\w+\s*\{", text):
        skipped.append((m.start(), closing(text, m.end() - 1)))
    for m in re.finditer(r"#\[(tokio::)?test\b[^\]]*\]", text):
        skipped.append((m.start(), closing(text, text.find("{", m.end()))))
    for m in re.finditer(r"\bfn\s+(\w+)", text):
        if any(a <= m.start() <= b for a, b in skipped):
            continue
        j, depth = m.end(), 0
        while j < len(text) and not (depth == 0 and text[j] in "{;"):
            depth += {"(": 1, "[": 1, ")": -1, "]": -1}.get(text[j], 0)
            j += 1
        if j >= len(text) or text[j] == ";":
            continue
        length = line(closing(text, j)) - line(m.start()) + 1
        if length > limit:
            yield line(m.start()), m.group(1), length


def self_test():
    src = '''
fn short() { let s = "}}}"; let c = '{'; /* } */ }
fn long() {
''' + "    step();\n" * 70 + '''}
#[cfg(test)]
mod tests {
    fn helper() {
''' + "        step();\n" * 70 + '''    }
}
'''
    found = list(long_functions(src, 60))
    assert [(name, length) for _, name, length in found] == [("long", 72)], found


def main():
    limit = int(sys.argv[1]) if len(sys.argv) > 1 else 60
    self_test()
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.rs"],
                            capture_output=True, text=True, check=True).stdout.split()
    found = 0
    for path in sorted(set(listed)):
        if path.startswith("tests/") or "/tests/" in path:
            continue
        try:
            src = open(path, encoding="utf-8").read()
        except OSError:
            continue
        for line, name, length in long_functions(src, limit):
            print(f"{path}:{line}: fn {name} is {length} lines (at most {limit}): split it into named steps")
            found += 1
    print(f"function length: {found} functions outside tests over {limit} lines ({len(listed)} files)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
