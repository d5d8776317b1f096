#!/usr/bin/env python3
"""Writes the first ```cpp block of a Markdown file to a C++ file, so the
README's example is compiled (and run) by the tests and cannot rot."""
import sys

src, dst = sys.argv[1], sys.argv[2]
lines, inside, found = [], False, False
with open(src, encoding='utf-8') as f:
    for line in f:
        if not inside and line.strip() == '```cpp' and not found:
            inside = True
            continue
        if inside and line.strip() == '```':
            inside, found = False, True
            continue
        if inside:
            lines.append(line)
if not found:
    sys.exit(src + ': no ```cpp block')
with open(dst, 'w', encoding='utf-8') as f:
    f.write('// Generated from ' + src + ' by extract_cpp.py: edit the README, not this.\n')
    f.write('#pragma once\n')
    f.writelines(lines)
