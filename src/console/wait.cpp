#include <localvm/console/drain.hpp>
#include <localvm/console/log.hpp>
#include <localvm/console/wait.hpp>
#include <localvm/error.hpp>

#include "detail/await.hpp"
#include "console/log_search.hpp"
#include "detail/race.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <exception>
#include <memory>
#include <optional>
#include <variant>

namespace localvm::console {

text_matcher::text_matcher(std::string substring)
    : description_('"' + substring + '"') {
    test_ = [s = std::move(substring)](std::string_view line) {
        return line.find(s) != std::string_view::npos;
    };
}

text_matcher::text_matcher(const char* substring)
    : text_matcher(std::string(substring)) {}

text_matcher::text_matcher(std::regex re, std::string description)
    : description_(std::move(description)) {
    // shared: std::function needs a copyable target, and regexes are heavy
    test_ = [re = std::make_shared<const std::regex>(std::move(re))](std::string_view line) {
        return std::regex_search(line.begin(), line.end(), *re);
    };
}

text_matcher text_matcher::regex(const std::string& pattern) {
    try {
        return text_matcher(std::regex(pattern), "regex /" + pattern + "/");
    } catch (const std::regex_error& e) {
        throw_error(errc::invalid_argument,
                    "invalid regular expression /" + pattern + "/: " + e.what());
    }
}

bool text_matcher::matches(std::string_view line) const {
    return test_(line);
}

namespace {

std::string with_tail(std::string text, const std::filesystem::path& log, std::size_t lines) {
    auto tail = read_tail(log, lines);
    if (tail.empty())
        return text + "; the console log " + log.string() + " is empty or missing";
    text += "; last lines of the console log " + log.string() + ":";
    std::size_t pos = 0;
    while (pos <= tail.size()) {
        auto nl = tail.find('\n', pos);
        text += "\n  | " + tail.substr(pos, nl == std::string::npos ? nl : nl - pos);
        if (nl == std::string::npos)
            break;
        pos = nl + 1;
    }
    return text;
}

} // namespace

namespace detail {

boost::asio::awaitable<std::optional<std::string>>
find_in_log(console_log& reader, const text_matcher& matcher, bool match_partial_line) {
    namespace asio = boost::asio;
    for (;;) {
        for (auto& line : reader.read_lines())
            if (matcher.matches(line))
                co_return std::move(line);
        if (reader.caught_up())
            break;
        co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
    }
    if (match_partial_line) {
        auto partial = reader.partial_line();
        if (!partial.empty() && matcher.matches(partial))
            co_return partial;
    }
    co_return std::nullopt;
}

} // namespace detail

boost::asio::awaitable<std::string> wait_for_console(std::filesystem::path log,
                                                     text_matcher matcher,
                                                     std::chrono::milliseconds timeout,
                                                     abort_hook abort, wait_options options) {
    namespace asio = boost::asio;
    auto ex = co_await asio::this_coro::executor;
    console_log reader(log, options.start_offset);

    auto scan = [&]() {
        return detail::find_in_log(reader, matcher, options.match_partial_line);
    };
    if (auto found = co_await scan())
        co_return *found;

    auto follow = [&]() -> asio::awaitable<std::string> {
        for (;;) {
            co_await reader.wait_change();
            if (auto found = co_await scan())
                co_return *found;
        }
    };
    // Without a hook, the third racer never completes.
    asio::steady_timer never(ex, asio::steady_timer::time_point::max());
    auto aborted = [&]() -> asio::awaitable<std::string> {
        if (abort)
            co_return co_await abort();
        co_await never.async_wait(asio::use_awaitable);
        co_return std::string();
    };
    asio::steady_timer deadline(ex, localvm::detail::deadline_after(timeout));

    // The first to finish decides, also by throwing: an error (a missing
    // directory) must end the race at once rather than wait for the deadline.
    std::variant<std::string, std::monostate, std::string> outcome;
    std::exception_ptr failure;
    try {
        outcome = co_await localvm::detail::race(follow(), deadline.async_wait(asio::use_awaitable),
                                                 aborted());
    } catch (...) {
        failure = std::current_exception();
    }

    // Cancelled from outside: every racer ended, none of them decides.
    auto cancel_state = co_await asio::this_coro::cancellation_state;
    if (cancel_state.cancelled() != asio::cancellation_type::none)
        throw boost::system::system_error(asio::error::operation_aborted);
    if (failure)
        std::rethrow_exception(failure);

    auto what = "waiting for " + matcher.description() + " on the serial console";
    switch (outcome.index()) {
    case 0:
        co_return std::move(std::get<0>(outcome));
    case 1:
        if (auto found = co_await scan())
            co_return *found;
        throw_error(errc::timeout,
                    with_tail(what + ": no match within " + std::to_string(timeout.count()) + " ms",
                              log, options.tail_lines));
    default:
        // QEMU is gone; what it wrote last may still be on its way through
        // the log's drainer (QEMU's supervisor).
        co_await wait_drained(log, std::chrono::seconds(2));
        if (auto found = co_await scan())
            co_return *found;
        auto why = std::get<2>(outcome);
        throw_error(errc::guest_died,
                    with_tail(what + ": the guest died (" + (why.empty() ? "QEMU exited" : why) + ")",
                              log, options.tail_lines));
    }
}

} // namespace localvm::console
