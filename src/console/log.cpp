#include <localvm/console/drain.hpp>
#include <localvm/console/lines.hpp>
#include <localvm/console/log.hpp>
#include <localvm/error.hpp>

#include "console/blank.hpp"
#include "detail/utf8.hpp"
#include "sys/errno.hpp"
#include "sys/inotify.hpp"

#include <boost/asio/this_coro.hpp>

#include <algorithm>
#include <cerrno>
#include <optional>

#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

namespace localvm::console {

namespace {

constexpr std::size_t read_chunk = 64 * 1024;
constexpr std::size_t read_budget = 1024 * 1024; // per read_lines call
constexpr std::uint64_t tail_window_limit = 4 * 1024 * 1024;

// Splits `buf` into cleaned lines; when `drop_first`, the first (possibly cut)
// line is skipped. A final line without '\n' is included.
std::vector<std::string> split_lines(std::string_view buf, bool drop_first) {
    std::vector<std::string> lines;
    std::size_t pos = 0;
    bool first = true;
    while (pos <= buf.size()) {
        auto nl = buf.find('\n', pos);
        bool last = nl == std::string_view::npos;
        auto raw = buf.substr(pos, last ? std::string_view::npos : nl - pos);
        if (!(first && drop_first) && !(last && raw.empty()))
            lines.push_back(clean_line(raw));
        first = false;
        if (last)
            break;
        pos = nl + 1;
    }
    return lines;
}

} // namespace

std::string clean_line(std::string_view raw) {
    std::string out;
    out.reserve(raw.size());
    const std::size_t n = raw.size();
    auto at = [&](std::size_t k) {
        return static_cast<unsigned char>(raw[k]);
    };
    std::size_t i = 0;
    while (i < n) {
        unsigned char c = at(i);
        if (c == 0x1b) { // terminal escape sequences carry no text
            std::size_t j = i + 1;
            if (j < n && raw[j] == '[') { // CSI: parameters, intermediates, final byte
                ++j;
                while (j < n && at(j) >= 0x20 && at(j) <= 0x3f)
                    ++j;
                if (j < n && at(j) >= 0x40 && at(j) <= 0x7e)
                    ++j;
            } else if (j < n && raw[j] == ']') { // OSC: up to BEL or ESC '\'
                ++j;
                while (j < n && at(j) != 0x07 && at(j) != 0x1b)
                    ++j;
                if (j < n)
                    j += at(j) == 0x07 ? 1 : (j + 1 < n ? 2 : 1);
            } else { // ESC, intermediates, final byte (e.g. "ESC ( B", "ESC c")
                while (j < n && at(j) >= 0x20 && at(j) <= 0x2f)
                    ++j;
                if (j < n && at(j) >= 0x30 && at(j) <= 0x7e)
                    ++j;
            }
            i = j;
        } else if (c < 0x20 || c == 0x7f) {
            if (c == '\t')
                out += '\t';
            ++i;
        } else if (c < 0x80) {
            out += static_cast<char>(c);
            ++i;
        } else if (auto len = localvm::detail::sequence_length(raw, i)) {
            out.append(raw.substr(i, len));
            i += len;
        } else {
            out += '?';
            ++i;
        }
    }
    return out;
}

namespace {

// The last `want` bytes of a regular file; `whole` when that is all of it.
struct tail_bytes {
    std::string data;
    bool whole = true;
};

tail_bytes read_last(const std::filesystem::path& file, std::uint64_t want) {
    tail_bytes t;
    int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return t;
    struct stat st {};
    if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
        const auto size = static_cast<std::uint64_t>(st.st_size);
        const auto window = std::min(want, size);
        t.data.assign(window, '\0');
        std::size_t got = 0;
        while (got < window) {
            auto r = ::pread(fd, t.data.data() + got, window - got,
                             static_cast<off_t>(size - window + got));
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                break;
            got += static_cast<std::size_t>(r);
        }
        t.data.resize(got);
        t.whole = window == size && got == window;
    }
    ::close(fd);
    return t;
}

} // namespace

std::string read_tail(const std::filesystem::path& log, std::size_t max_lines) {
    if (max_lines == 0)
        return {};
    std::vector<std::string> lines;
    // The log, and before it the part rotated away (drain.hpp), as one text.
    const auto rotated = rotated_log(log);
    std::uint64_t window = 64 * 1024;
    for (;;) {
        window = std::min(window, tail_window_limit);
        auto cur = read_last(log, window);
        bool whole = cur.whole;
        if (cur.whole && cur.data.size() < window) {
            auto before = read_last(rotated, window - cur.data.size());
            whole = before.whole;
            cur.data.insert(0, before.data);
        }
        lines = split_lines(cur.data, !whole);
        std::erase_if(lines, [](const std::string& l) { return detail::blank(l); });
        if (lines.size() >= max_lines || whole || window >= tail_window_limit)
            break;
        window *= 4;
    }
    std::string out;
    auto first = lines.size() > max_lines ? lines.size() - max_lines : 0;
    for (auto i = first; i < lines.size(); ++i) {
        if (i != first)
            out += '\n';
        out += lines[i];
    }
    return out;
}

struct console_log::impl {
    std::filesystem::path file;
    std::filesystem::path rotated; // "<file>.1", see drain.hpp
    int fd = -1;
    dev_t dev = 0;
    ino_t ino = 0;
    std::uint64_t offset = 0;
    line_splitter lines;
    bool caught_up = true;

    std::optional<sys::inotify> notify;

    ~impl() {
        if (fd >= 0)
            ::close(fd);
    }

    void reset_to_start() {
        offset = 0;
        lines.drop_partial();
    }

    // Opens the file when it appeared, restarts it when truncated. False
    // when there is no file to read. A file replaced at the path is read to
    // its end first (see `advance`).
    bool sync_file() {
        if (fd < 0) {
            struct stat st {};
            if (::stat(file.c_str(), &st) != 0)
                return false;
            if (!open_at(file, offset)) // the first file: from the start offset
                return false;
        } // else: even when removed or replaced, its last writes are readable through fd
        struct stat own {};
        if (::fstat(fd, &own) == 0 && static_cast<std::uint64_t>(own.st_size) < offset)
            reset_to_start(); // truncated
        return true;
    }

    bool open_at(const std::filesystem::path& p, std::uint64_t from) {
        int nfd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (nfd < 0) {
            if (errno == ENOENT) // removed between stat and open
                return false;
            sys::throw_errno(errc::io_error, "opening console log " + p.string(), errno);
        }
        struct stat own {};
        ::fstat(nfd, &own);
        if (fd >= 0)
            ::close(fd);
        fd = nfd;
        dev = own.st_dev;
        ino = own.st_ino;
        offset = from;
        return true;
    }

    bool is_ours(const struct stat& st) const { return st.st_dev == dev && st.st_ino == ino; }

    // At the end of the open file: moves on when the path now names another
    // file. When the drainer rotated ours to "<log>.1", the new file goes on
    // where ours ended (a cut line continues); when ours was rotated out
    // twice, "<log>.1" is the part in between and is read first; otherwise
    // the file was replaced (a new run) and reading starts afresh.
    bool advance() {
        struct stat cur {}, rot {};
        if (::stat(file.c_str(), &cur) != 0 || is_ours(cur))
            return false;
        bool has_rot = ::stat(rotated.c_str(), &rot) == 0;
        bool ours_rotated = has_rot && is_ours(rot);
        if (has_rot && !ours_rotated &&
            !(rot.st_dev == cur.st_dev && rot.st_ino == cur.st_ino) && open_at(rotated, 0))
            return true;
        if (!ours_rotated)
            lines.drop_partial();
        return open_at(file, 0);
    }

    void add_file_watch() {
        // Follows symlinks: the directory watch alone misses writes to a
        // symlinked log's target. ENOENT: not created yet, the directory
        // watch reports its creation.
        notify->watch(file, IN_MODIFY | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF);
    }
};

console_log::console_log(std::filesystem::path file, std::uint64_t start_offset)
    : impl_(std::make_unique<impl>()) {
    impl_->file = std::move(file);
    impl_->rotated = rotated_log(impl_->file);
    if (start_offset == end) {
        impl_->offset = 0;
        if (impl_->sync_file()) {
            struct stat st {};
            if (::fstat(impl_->fd, &st) == 0)
                impl_->offset = static_cast<std::uint64_t>(st.st_size);
        }
    } else {
        impl_->offset = start_offset;
    }
}

console_log::~console_log() = default;
console_log::console_log(console_log&&) noexcept = default;
console_log& console_log::operator=(console_log&&) noexcept = default;

std::vector<std::string> console_log::read_lines() {
    auto& s = *impl_;
    std::vector<std::string> out;
    s.caught_up = true;
    if (!s.sync_file())
        return out;
    std::string buf(read_chunk, '\0');
    std::size_t budget = read_budget;
    for (;;) {
        if (budget == 0) {
            s.caught_up = false;
            break;
        }
        auto want = std::min(read_chunk, budget);
        auto r = ::pread(s.fd, buf.data(), want, static_cast<off_t>(s.offset));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            sys::throw_errno(errc::io_error, "reading console log " + s.file.string(), errno);
        }
        if (r == 0) {
            if (s.advance())
                continue;
            break;
        }
        auto got = static_cast<std::size_t>(r);
        s.offset += got;
        budget -= got;
        s.lines.feed(std::string_view(buf.data(), got), out);
    }
    return out;
}

bool console_log::caught_up() const noexcept {
    return impl_->caught_up;
}

std::string console_log::partial_line() const {
    return impl_->lines.partial_line();
}

std::string console_log::latest_line() const {
    return impl_->lines.latest_line();
}

std::uint64_t console_log::offset() const noexcept {
    return impl_->offset;
}

const std::filesystem::path& console_log::file() const noexcept {
    return impl_->file;
}

boost::asio::awaitable<void> console_log::wait_change() {
    auto& s = *impl_;
    if (!s.notify) {
        sys::inotify notify(co_await boost::asio::this_coro::executor);
        auto dir = s.file.parent_path();
        if (dir.empty())
            dir = ".";
        if (!notify.watch(dir, IN_CREATE | IN_MODIFY | IN_ATTRIB | IN_MOVED_TO | IN_MOVED_FROM |
                                   IN_DELETE | IN_ONLYDIR)) {
            int err = errno;
            sys::throw_errno(err == ENOENT || err == ENOTDIR ? errc::not_found : errc::io_error,
                             "watching " + dir.string() + " for the console log", err);
        }
        s.notify.emplace(std::move(notify));
        s.add_file_watch();
        co_return; // the caller reads once more, now that nothing can be missed
    }
    s.add_file_watch(); // the file may have been created or replaced since
    co_await s.notify->wait();
}

} // namespace localvm::console
