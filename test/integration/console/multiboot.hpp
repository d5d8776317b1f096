// Tiny guests for the console tests: flat multiboot kernels QEMU loads with
// -kernel (no OS, no image to build). One floods the serial port, one halts.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

namespace console_test {

/// Writes a multiboot (v1, a.out kludge) kernel at `file`: a 32-byte header
/// loading the file at 1 MiB, then `code` (32-bit protected mode, flat
/// segments), entered right after the header.
inline void write_multiboot(const std::filesystem::path& file, const std::string& code) {
    constexpr std::uint32_t base = 0x100000, magic = 0x1BADB002, flags = 0x00010000;
    const std::uint32_t header[8] = {magic, flags,    0u - (magic + flags), base, base, 0,
                                     0,     base + 32}; // header, load, load end, bss end, entry
    std::ofstream out(file, std::ios::binary);
    for (auto word : header)
        for (int i = 0; i < 4; ++i)
            out.put(static_cast<char>((word >> (8 * i)) & 0xff));
    out << code;
    if (!out)
        throw std::runtime_error("cannot write " + file.string());
}

/// A guest that writes "flood 0123456789 abcdefghijklmnopqrstuvwxyz\n" to
/// COM1 (port 0x3f8) over and over, as fast as QEMU takes it.
inline void write_flood_kernel(const std::filesystem::path& file) {
    constexpr std::uint32_t msg = 0x100000 + 32 + 18; // after the 18 bytes of code
    std::string code = "\xFC"                         // cld
                       "\x66\xBA\xF8\x03"             // mov dx, 0x3f8
                       "\xBE";                        // outer: mov esi, msg
    for (int i = 0; i < 4; ++i)
        code += static_cast<char>((msg >> (8 * i)) & 0xff);
    code += "\xAC"      // inner: lodsb
            "\x84\xC0"  // test al, al
            "\x74\xF6"  // jz outer
            "\xEE"      // out dx, al
            "\xEB\xF8"; // jmp inner
    code += std::string("flood 0123456789 abcdefghijklmnopqrstuvwxyz\n") + '\0';
    write_multiboot(file, code);
}

/// A guest that says "halted" on COM1 and halts for good (no CPU burnt; it
/// ignores the ACPI power button, as a guest with no OS does).
inline void write_halt_kernel(const std::filesystem::path& file) {
    std::string code = "\x66\xBA\xF8\x03"; // mov dx, 0x3f8
    for (char c : std::string("halted\n"))
        code += std::string("\xB0") + c + "\xEE"; // mov al, c; out dx, al
    code += "\xFA"                                // cli
            "\xF4"                                // hlt
            "\xEB\xFD";                           // jmp hlt
    write_multiboot(file, code);
}

} // namespace console_test
