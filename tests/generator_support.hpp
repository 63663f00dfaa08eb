// Helpers the async-generator suites share (tests/test_generator.cpp,
// test_generator_lifetime.cpp): an event log, Python's ZeroDivisionError, and a counting
// generator that logs each step and its cleanup on GeneratorExit.
#pragma once

#include <corio/corio.hpp>

#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

#include "core_support.hpp"

namespace corio_test {

using Log = std::vector<std::string>;

struct ZeroDivisionError : std::runtime_error {
    ZeroDivisionError() : std::runtime_error("ZeroDivisionError") {}
};

// Yields 0..n-1, each after `step`; on GeneratorExit spends `cleanup` awaiting, then finishes.
inline corio::AsyncGenerator<int> counter(int n, Log* log, corio::Clock::duration step = corio::Clock::duration::zero(),
                                          corio::Clock::duration cleanup = corio::Clock::duration::zero()) {
    bool closing = false;
    try {
        for (int i = 0; i < n; ++i) {
            if (step > corio::Clock::duration::zero()) co_await corio::sleep(step);
            log->push_back(str("yield ", i));
            co_yield i;
            log->push_back(str("resumed ", i));
        }
    } catch (const corio::GeneratorExit&) {
        log->push_back("GeneratorExit");
        closing = true;
    }
    if (closing) {
        co_await corio::sleep(cleanup);  // cleanup may await
        log->push_back("cleanup done");
        throw corio::GeneratorExit{};
    }
    log->push_back("finished");
}

}  // namespace corio_test
