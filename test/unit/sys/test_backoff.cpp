// detail::backoff (src/detail/backoff.hpp): the one capped exponential
// backoff of every retry loop. Pure: no clock.
#define BOOST_TEST_MODULE backoff
#include <boost/test/unit_test.hpp>

#include <chrono>

#include "detail/backoff.hpp"

using localvm::detail::backoff;
using namespace std::chrono_literals;
using duration = backoff::duration;

BOOST_AUTO_TEST_CASE(doubles_up_to_the_cap_and_stays_there) {
    backoff b(5ms, 100ms);
    for (auto want : {5ms, 10ms, 20ms, 40ms, 80ms, 100ms, 100ms, 100ms})
        BOOST_TEST(b.next().count() == duration(want).count());
}

BOOST_AUTO_TEST_CASE(a_cap_that_is_a_power_of_two_of_the_first_is_reached_exactly) {
    backoff b(50ms, 800ms);
    for (auto want : {50ms, 100ms, 200ms, 400ms, 800ms, 800ms})
        BOOST_TEST(b.next().count() == duration(want).count());
}

BOOST_AUTO_TEST_CASE(peek_and_reset) {
    backoff b(1ms, 50ms);
    BOOST_TEST(b.peek().count() == duration(1ms).count());
    b.next();
    b.next();
    BOOST_TEST(b.peek().count() == duration(4ms).count());
    b.reset();
    BOOST_TEST(b.next().count() == duration(1ms).count());
    BOOST_TEST(b.next().count() == duration(2ms).count());
}

BOOST_AUTO_TEST_CASE(a_first_pause_above_the_cap) {
    backoff b(5s, 1s);
    BOOST_TEST(b.next().count() == duration(5s).count()); // asked for
    BOOST_TEST(b.next().count() == duration(1s).count());
    BOOST_TEST(b.next().count() == duration(1s).count());
}

BOOST_AUTO_TEST_CASE(zero_and_negative) {
    backoff zero(0ms, 1s);
    BOOST_TEST(zero.next().count() == 0);
    BOOST_TEST(zero.next().count() == 0);
    backoff negative_first(-5ms, 1s);
    BOOST_TEST(negative_first.next().count() == 0);
    BOOST_TEST(negative_first.next().count() == 0);
    backoff negative_cap(5ms, -1s);
    BOOST_TEST(negative_cap.next().count() == duration(5ms).count());
    BOOST_TEST(negative_cap.next().count() == 0); // a cap below zero is zero
}

BOOST_AUTO_TEST_CASE(never_overflows) {
    const duration huge = duration::max();
    backoff b(huge / 3, huge);
    BOOST_TEST(b.next().count() == (huge / 3).count());
    BOOST_TEST(b.next().count() == (huge / 3 * 2).count());
    BOOST_TEST(b.next().count() == huge.count()); // 4/3 of max would wrap
    BOOST_TEST(b.next().count() == huge.count());
}

BOOST_AUTO_TEST_CASE(next_bounded_by_a_deadline) {
    backoff b(10ms, 1s);
    BOOST_TEST(b.next(3ms).count() == duration(3ms).count()); // cut to what is left
    BOOST_TEST(b.peek().count() == duration(20ms).count());   // but advanced
    BOOST_TEST(b.next(1s).count() == duration(20ms).count());
    BOOST_TEST(b.next(-5ms).count() == 0); // the deadline passed
    BOOST_TEST(b.peek().count() == duration(80ms).count());
}
