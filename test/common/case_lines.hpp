// A Boost.Test observer that prints one line per finished test case,
// `case NAME ok|FAIL|skipped`, so a fault-matrix program shows at a glance
// which cases were tried and how each ended. Use it as a global fixture:
//   BOOST_TEST_GLOBAL_FIXTURE(lvtest::case_lines);
#pragma once

#include <boost/test/framework.hpp>
#include <boost/test/results_collector.hpp>
#include <boost/test/tree/observer.hpp>
#include <boost/test/tree/test_unit.hpp>

#include <iostream>

namespace lvtest {

class case_lines : public boost::unit_test::test_observer {
public:
    void setup() { boost::unit_test::framework::register_observer(*this); }
    void teardown() { boost::unit_test::framework::deregister_observer(*this); }

    void test_unit_finish(const boost::unit_test::test_unit& tu, unsigned long) override {
        if (tu.p_type != boost::unit_test::TUT_CASE)
            return;
        const auto& r = boost::unit_test::results_collector.results(tu.p_id);
        std::cout << "case " << tu.p_name.get() << " " << (r.passed() ? "ok" : "FAIL")
                  << std::endl;
    }
    void test_unit_skipped(const boost::unit_test::test_unit& tu,
                           boost::unit_test::const_string) override {
        if (tu.p_type == boost::unit_test::TUT_CASE)
            std::cout << "case " << tu.p_name.get() << " skipped" << std::endl;
    }
    // After the results collector (priority 0) has recorded the case.
    int priority() override { return 10; }
};

} // namespace lvtest
