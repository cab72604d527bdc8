#!/usr/bin/env python3
"""Keeps docs/api.md true to the installed headers (issue #18), in two directions.

names:    every qualified C++ name that docs/api.md writes in a code span (`gg::sum(x)`,
          `gg::nn::Linear`, `Tensor::narrow(...)`, `F::linear`) must exist. The script writes a C++
          file with one using-declaration per name and compiles it, through a small CMake project
          that finds the installed package (find_package(groupgrad)), so only installed headers are
          seen. A namespace member becomes `using gg::sum;` in a function body (overload sets,
          classes, templates, aliases, enumerators); a class member becomes
          `struct C7 : gg::Tensor { using gg::Tensor::narrow; };` (overloaded and protected members
          too). A name that does not exist fails the compile, and the script names it with its line
          in docs/api.md.
coverage: every function and class declared at namespace scope in the installed headers, and every
          public member function of the classes in MEMBERS_CHECKED (gg::Tensor, gg::nn::Module,
          the optimizer and scheduler bases, ...), must be mentioned by docs/api.md, except what
          the short ALLOWED list below names (and namespaces called `detail`).

How a name in a span is read: `gg::...` as written; `Tensor::x` is gg::Tensor's member x; `F::x` is
gg::nn::functional::x; names of libtorch and the standard library (torch::, at::, c10::, std::) and
of the placeholder class T (`T::apply`) are not groupgrad's and are skipped. Any other qualified
name is an error: write it out from gg:: so that it is checked.

    check_api_doc.py --doc docs/api.md --prefix <install prefix> --work-dir <dir> names
    check_api_doc.py --doc docs/api.md --prefix <install prefix> coverage
Exit status 0 when the check holds, 1 when it does not (each problem printed), 2 on bad usage.
"""
import argparse
import os
import re
import subprocess
import sys

SKIPPED_PREFIXES = {"torch", "at", "c10", "std", "T"}
SHORTHANDS = {"Tensor": "gg::Tensor", "F": "gg::nn::functional"}

# Declared in the installed headers but not part of the API users program against.
ALLOWED = {
    "gg::autograd::node_name": "core's hook for printing grad_fn=<...>, defined by the engine",
    "gg::autograd::FunctionDetail": "the machinery behind Function<T>::apply",
}

# Classes whose public member functions coverage checks one by one (api.md lists each); the other
# classes' lines name their members in passing.
MEMBERS_CHECKED = {"gg::Tensor", "gg::nn::Module", "gg::optim::Optimizer", "gg::optim::LRScheduler",
                   "gg::gradcheck::Registry", "gg::Storage", "gg::Generator"}

CODE_SPAN = re.compile(r"`([^`]+)`")
QUALIFIED = re.compile(
    r"(?<![\w:.])((?:[A-Za-z_]\w*::)+(?:operator(?:\(\)|\[\]|<<|>>|[-+*/=<>!]+)|~?[A-Za-z_]\w*))")


def doc_names(doc_path):
    """[(line, name as written, resolved name or None, problem or None)] from the doc's spans."""
    text = open(doc_path, encoding="utf-8").read()
    # Fenced blocks are examples, not references: blank them out, keeping line numbers.
    text = re.sub(r"^```.*?^```", lambda m: "\n" * m.group(0).count("\n"), text,
                  flags=re.S | re.M)
    out = []
    for span in CODE_SPAN.finditer(text):
        for m in QUALIFIED.finditer(span.group(1)):
            written = m.group(1)
            line = text.count("\n", 0, span.start(1) + m.start(1)) + 1
            first, rest = written.split("::", 1)
            if first in SKIPPED_PREFIXES:
                continue
            if first == "gg":
                out.append((line, written, written, None))
            elif first in SHORTHANDS:
                out.append((line, written, SHORTHANDS[first] + "::" + rest, None))
            else:
                out.append((line, written, None,
                            f"`{written}` is not checkable: write it from gg:: (or Tensor::, F::)"))
    return out


# ---- a small reader of declarations (enough for the library's own headers) ---------------------

def strip_code(text):
    """Comments, string and character literals and preprocessor lines removed."""
    text = re.sub(r"//[^\n]*|/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'', '""', text)
    lines, continued = [], False
    for line in text.split("\n"):
        is_pp = continued or line.lstrip().startswith("#")
        continued = is_pp and line.rstrip().endswith("\\")
        lines.append("" if is_pp else line)
    return "\n".join(lines)


TOKEN = re.compile(r"[A-Za-z_]\w*|::|\S")
KEYWORDS = {"decltype", "noexcept", "requires", "sizeof", "alignas", "static_assert", "if",
            "return", "operator", "explicit", "template"}


def declarations(text):
    """Namespaces, enums, classes (with a body), namespace-scope functions and public member
    functions in one header: yields (kind, qualified name)."""
    toks = TOKEN.findall(strip_code(text))
    scopes = []  # (kind, name, access): kind ns / class / enum / block
    statement = []  # tokens since the last ; { } at the current scope
    paren = 0

    def path():
        return "::".join(s[1] for s in scopes if s[0] in ("ns", "class", "enum"))

    def top():
        return scopes[-1] if scopes else ("ns", "", "public")

    def function_name(stmt):
        """The name a declaration statement declares, when it declares a function."""
        if not stmt or stmt[0] in ("using", "typedef", "friend", "namespace"):
            return None
        depth = 0
        for i, t in enumerate(stmt):
            if t == "operator" and depth == 0:  # operator<<, operator(), operator-, ...
                rest = stmt[i + 1:]
                if rest[:2] == ["(", ")"]:
                    return "operator()"
                return "operator" + "".join(rest[:rest.index("(")]) if "(" in rest else None
            if t == "(" and depth == 0 and i > 0:
                j = i - 1
                if stmt[j] == ">":  # explicit specialisation: name<args>(
                    angle = 0
                    while j >= 0:
                        angle += {">": 1, "<": -1}.get(stmt[j], 0)
                        if angle == 0:
                            break
                        j -= 1
                    j -= 1
                name = stmt[j] if j >= 0 else ""
                if re.match(r"[A-Za-z_]\w*$", name) and name not in KEYWORDS:
                    if j > 0 and stmt[j - 1] in ("~", "::"):
                        return None  # a destructor, or an out-of-class definition
                    return name
                return None
            if t in "(<[":
                depth += 1
            elif t in ")>]":
                depth -= 1
        return None

    i = 0
    while i < len(toks):
        t = toks[i]
        kind, name, access = top()
        if t == "(":
            paren += 1
        elif t == ")":
            paren -= 1
        if paren > 0 or t in ("(", ")"):
            statement.append(t)
            i += 1
            continue
        if (kind == "class" and t in ("public", "private", "protected")
                and toks[i + 1:i + 2] == [":"]):
            scopes[-1] = (kind, name, t)
            statement = []
            i += 2
            continue
        if t == "{":
            head = statement
            if head and head[0] == "namespace":
                scopes.append(("ns", "".join(head[1:]) or "(anonymous)", "public"))
                yield ("namespace", path())
            elif "enum" in head and kind in ("ns", "class"):
                n = [x for x in head if re.match(r"[A-Za-z_]\w*$", x)
                     and x not in ("enum", "class", "struct")]
                ename = n[0] if n else "(anonymous)"
                yield ("enum", f"{path()}::{ename}")
                scopes.append(("enum", ename, "public"))
            elif (("class" in head or "struct" in head) and "(" not in head and "=" not in head
                  and kind in ("ns", "class")):
                k = max(j for j, x in enumerate(head) if x in ("class", "struct"))
                cname = head[k + 1] if k + 1 < len(head) else "(anonymous)"
                if kind == "ns" or access == "public":
                    yield ("class", f"{path()}::{cname}")
                scopes.append(("class", cname, "private" if head[k] == "class" else "public"))
            else:
                if kind in ("ns", "class"):
                    f = function_name(head)
                    if f and (kind == "ns" or (access == "public" and f != name)):
                        yield ("function" if kind == "ns" else "member", f"{path()}::{f}")
                scopes.append(("block", "", "public"))
            statement = []
        elif t == "}":
            if scopes:
                scopes.pop()
            statement = []
        elif t == ";":
            if kind in ("ns", "class"):
                f = function_name(statement)
                if f and (kind == "ns" or (access == "public" and f != name)):
                    yield ("function" if kind == "ns" else "member", f"{path()}::{f}")
            statement = []
        else:
            statement.append(t)
        i += 1


def installed_headers(prefix):
    root = os.path.join(prefix, "include", "groupgrad")
    if not os.path.isdir(root):
        sys.exit(f"check_api_doc: no installed headers under {root} (run cmake --install first)")
    for dirpath, _, files in os.walk(root):
        for f in sorted(files):
            if f.endswith(".hpp"):
                yield os.path.join(dirpath, f)


def known_scopes(prefix):
    """Namespaces and enums of the installed headers: the qualifiers that are not classes."""
    namespaces, enums = set(), set()
    for header in installed_headers(prefix):
        for kind, name in declarations(open(header, encoding="utf-8").read()):
            if kind == "namespace":
                namespaces.add(name)
            elif kind == "enum":
                enums.add(name)
    return namespaces, enums


# ---- names: compile one using-declaration per name ---------------------------------------------

def check_names(args):
    entries = doc_names(args.doc)
    problems = [f"{args.doc}:{line}: {why}" for line, _, _, why in entries if why]
    namespaces, enums = known_scopes(args.prefix)
    seen, decls = set(), []
    for line, written, name, why in entries:
        if why or name in seen:
            continue
        seen.add(name)
        qualifier = name.rsplit("::", 1)[0]
        if name in namespaces:
            form = "namespace"
        elif qualifier in namespaces or qualifier in enums:
            form = "function"
        else:
            form = "class"
        decls.append((line, written, name, form))

    os.makedirs(args.work_dir, exist_ok=True)
    source = ["// Generated by tools/check_api_doc.py from docs/api.md: one name per declaration.",
              "#include <groupgrad/groupgrad.hpp>", "namespace api_doc_check {"]
    where = {}  # generated line -> (doc line, written, name)
    for n, (line, written, name, form) in enumerate(decls):
        qualifier = name.rsplit("::", 1)[0]
        if form == "namespace":  # a namespace named as such: an alias checks that it exists
            source.append(f"namespace alias{n} = {name};")
            where[len(source)] = (line, written, name)
            continue
        if form == "function":
            source.append(f"void name{n}() {{")
        else:
            source.append(f"struct Name{n} : {qualifier} {{")
        source.append(f"  using {name};")
        where[len(source)] = (line, written, name)
        source.append("}" if form == "function" else "};")
    source.append("}  // namespace api_doc_check")
    open(os.path.join(args.work_dir, "api_doc_names.cpp"), "w").write("\n".join(source) + "\n")
    open(os.path.join(args.work_dir, "CMakeLists.txt"), "w").write(
        "cmake_minimum_required(VERSION 3.22)\n"
        "project(api_doc_names LANGUAGES CXX)\n"
        "set(CMAKE_CXX_STANDARD 20)\n"
        "find_package(groupgrad CONFIG REQUIRED)\n"
        "add_library(api_doc_names OBJECT api_doc_names.cpp)\n"
        "target_link_libraries(api_doc_names PRIVATE groupgrad::groupgrad)\n")

    build = os.path.join(args.work_dir, "build")
    configure = [args.cmake, "-S", args.work_dir, "-B", build, f"-DCMAKE_PREFIX_PATH={args.prefix}",
                 "-DCMAKE_BUILD_TYPE=Release"]
    if args.cxx:
        configure.append(f"-DCMAKE_CXX_COMPILER={args.cxx}")
    if args.generator:
        configure += ["-G", args.generator]
    result = subprocess.run(configure, capture_output=True, text=True)
    if result.returncode != 0:
        print(result.stdout + result.stderr)
        print("check_api_doc: configuring the check project failed")
        return 1
    result = subprocess.run([args.cmake, "--build", build], capture_output=True, text=True)
    output = result.stdout + result.stderr
    failed = set()
    for m in re.finditer(r"api_doc_names\.cpp:(\d+):(?:\d+:)? error", output):
        generated = int(m.group(1))
        if generated in where:
            failed.add(where[generated])
    for line, written, name in sorted(failed):
        problems.append(f"{args.doc}:{line}: `{written}` ({name}) is not declared by the "
                        "installed headers")
    if result.returncode != 0 and not failed:
        problems.append("the check file did not compile, and no error points at one name:\n"
                        + output)
    elif result.returncode != 0:
        print(output)
    if problems:
        print("docs/api.md names what the installed headers do not declare:")
        for p in problems:
            print("  " + p)
        return 1
    print(f"check_api_doc: all {len(decls)} names docs/api.md mentions exist in the installed "
          "headers")
    return 0


# ---- coverage: every declaration is mentioned --------------------------------------------------

def check_coverage(args):
    mentioned = {name for _, _, name, why in doc_names(args.doc) if not why}
    # A class is documented by its own line; a mention of one of its members counts too.
    mentioned |= {n.rsplit("::", 1)[0] for n in mentioned}
    missing, declared = {}, set()
    for header in installed_headers(args.prefix):
        rel = os.path.relpath(header, os.path.join(args.prefix, "include"))
        for kind, name in declarations(open(header, encoding="utf-8").read()):
            declared.add(name)
            if (kind in ("namespace", "enum") or "::detail" in name or name in ALLOWED
                    or name in mentioned):
                continue
            if kind == "member" and (name.rsplit("::", 1)[0] not in MEMBERS_CHECKED
                                     or name.endswith("::operator=")):
                continue  # members of other classes: their class's line describes them
            if not name.startswith("gg::"):
                continue
            missing.setdefault(name, rel)
    stale = sorted(set(ALLOWED) - declared)
    if stale:
        print("ALLOWED in tools/check_api_doc.py names what the installed headers no longer "
              "declare: " + ", ".join(stale))
        return 1
    if missing:
        print("Declared in the installed headers but not in docs/api.md (add a line, or to ALLOWED "
              "in tools/check_api_doc.py with a reason):")
        for name, rel in sorted(missing.items()):
            print(f"  {name}  ({rel})")
        return 1
    print("check_api_doc: every public function and class of the installed headers is in "
          "docs/api.md")
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("check", choices=["names", "coverage"])
    parser.add_argument("--doc", required=True)
    parser.add_argument("--prefix", required=True, help="where cmake --install put groupgrad")
    parser.add_argument("--work-dir", help="for the generated check project (names)")
    parser.add_argument("--cmake", default="cmake")
    parser.add_argument("--cxx", help="the C++ compiler (default: CMake's choice)")
    parser.add_argument("--generator", help="CMake generator for the check project")
    args = parser.parse_args()
    if args.check == "names":
        if not args.work_dir:
            parser.error("names needs --work-dir")
        return check_names(args)
    return check_coverage(args)


if __name__ == "__main__":
    sys.exit(main())
