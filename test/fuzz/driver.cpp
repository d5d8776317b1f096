// A libFuzzer-compatible driver for builds without libFuzzer (the `fuzz`
// meson suite under gcc): runs the target over every corpus file, then over
// a bounded number of deterministic random mutations of them. Any property
// violation aborts, so the test fails; the same inputs run every time.
//
// Usage: driver [--runs N] [--seed S] [--max-len L] PATH...
//   PATH: corpus files or directories of them.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

struct rng {
    std::uint64_t s;
    std::uint64_t next() { // splitmix64
        std::uint64_t z = (s += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
    std::size_t below(std::size_t n) { return n ? next() % n : 0; }
};

// Bytes that matter to line-framed JSON.
const char interesting[] = {'\n', '\r', '{', '}', '[', ']', '"', ':', ',', '\\', ' ', '0', '-',
                            'e', '\0', '\x7f', '\xc3', '\xff'};

void mutate(std::string& s, const std::vector<std::string>& corpus, rng& r, std::size_t max_len) {
    int steps = 1 + static_cast<int>(r.below(4));
    for (int i = 0; i < steps; ++i) {
        switch (r.below(8)) {
        case 0: // flip a bit
            if (!s.empty())
                s[r.below(s.size())] ^= static_cast<char>(1u << r.below(8));
            break;
        case 1: // set an interesting byte
            if (!s.empty())
                s[r.below(s.size())] = interesting[r.below(sizeof interesting)];
            break;
        case 2: // insert an interesting byte
            s.insert(s.begin() + static_cast<std::ptrdiff_t>(r.below(s.size() + 1)),
                     interesting[r.below(sizeof interesting)]);
            break;
        case 3: // erase a range
            if (!s.empty()) {
                auto at = r.below(s.size());
                s.erase(at, 1 + r.below(std::min<std::size_t>(s.size() - at, 32)));
            }
            break;
        case 4: // duplicate a range
            if (!s.empty()) {
                auto at = r.below(s.size());
                auto piece = s.substr(at, 1 + r.below(64));
                s.insert(r.below(s.size() + 1), piece);
            }
            break;
        case 5: { // splice with another input
            auto& o = corpus[r.below(corpus.size())];
            s = s.substr(0, r.below(s.size() + 1)) + o.substr(r.below(o.size() + 1));
            break;
        }
        case 6: // truncate
            s.resize(r.below(s.size() + 1));
            break;
        case 7: // random byte
            if (!s.empty())
                s[r.below(s.size())] = static_cast<char>(r.next());
            break;
        }
    }
    if (s.size() > max_len)
        s.resize(max_len);
}

int run(const std::string& s) {
    return LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
}

} // namespace

int main(int argc, char** argv) {
    std::uint64_t runs = 10000, seed = 1;
    std::size_t max_len = 4096;
    std::vector<std::string> corpus;
    namespace fs = std::filesystem;
    auto load = [&](const fs::path& p) {
        std::ifstream in(p, std::ios::binary);
        corpus.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    };
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--runs" && i + 1 < argc)
            runs = std::stoull(argv[++i]);
        else if (a == "--seed" && i + 1 < argc)
            seed = std::stoull(argv[++i]);
        else if (a == "--max-len" && i + 1 < argc)
            max_len = std::stoull(argv[++i]);
        else if (fs::is_directory(a)) {
            std::vector<fs::path> files;
            for (auto& e : fs::directory_iterator(a))
                if (e.is_regular_file())
                    files.push_back(e.path());
            std::sort(files.begin(), files.end()); // deterministic order
            for (auto& f : files)
                load(f);
        } else if (fs::is_regular_file(a)) {
            load(a);
        } else {
            std::fprintf(stderr, "driver: no such corpus: %s\n", a.c_str());
            return 2;
        }
    }
    if (corpus.empty()) {
        std::fprintf(stderr, "driver: empty corpus\n");
        return 2;
    }
    run("");
    for (auto& c : corpus)
        run(c);
    rng r{seed};
    for (std::uint64_t i = 0; i < runs; ++i) {
        auto s = corpus[r.below(corpus.size())];
        mutate(s, corpus, r, max_len);
        run(s);
    }
    std::printf("driver: %zu corpus inputs and %llu mutations ran clean\n", corpus.size(),
                static_cast<unsigned long long>(runs));
    return 0;
}
