// Helpers the task, task-group and timeout suites share (tests/test_task*.cpp,
// test_taskgroup*.cpp, test_timeout*.cpp): stand-ins for Python's exception types, the shape of
// an exception and of how an awaitable ended, coroutines that sleep and then return, raise or
// log, and for the task suites a capture of the loop's exception-handler reports.
#pragma once

#include <corio/corio.hpp>

#include <chrono>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "core_support.hpp"

namespace corio_test {

using namespace corio;

using Log = std::vector<std::string>;

// Python's built-in exceptions, by name.
struct ZeroDivisionError : std::runtime_error {
    ZeroDivisionError() : std::runtime_error("ZeroDivisionError") {}
};
struct MyExc : std::runtime_error {
    MyExc() : std::runtime_error("MyExc") {}
};
struct ValueError : std::runtime_error {
    explicit ValueError(const std::string& what = "ValueError") : std::runtime_error(what) {}
};
struct KeyError : std::runtime_error {
    KeyError() : std::runtime_error("KeyError") {}
};

// A readable shape of any exception: "EG[ZeroDivisionError,EG[ValueError]]", "CancelledError",
// "TimeoutError".
inline std::string shape(const std::exception_ptr& e) {
    if (!e) return "none";
    try {
        std::rethrow_exception(e);
    } catch (const ExceptionGroup& g) {
        std::string s = "EG[";
        for (std::size_t i = 0; i < g.exceptions().size(); ++i) {
            if (i) s += ',';
            s += shape(g.exceptions()[i]);
        }
        return s + "]";
    } catch (const CancelledError&) {
        return "CancelledError";
    } catch (const TimeoutError&) {
        return "TimeoutError";
    } catch (const std::exception& x) {
        return x.what();
    } catch (...) {
        return "unknown";
    }
}

// Awaits `aw` (moved in) and says how it ended: "ok" or the shape of what it threw.
template <class A>
Coro<std::string> outcome(A aw) {
    std::string out = "ok";
    try {
        co_await std::move(aw);
    } catch (...) {
        out = shape(std::current_exception());
    }
    co_return out;
}

// "@<ms since t0>".
inline std::string at(Clock::time_point t0) {
    std::string s = "@";  // not `"@" + std::to_string(...)`: g++ 12 -Wrestrict false positive
    s += std::to_string(int(ms_since(t0)));
    return s;
}

inline Coro<int> value_after(Clock::duration d, int v) {
    co_await sleep(d);
    co_return v;
}

inline Coro<> nap(Clock::duration d) { co_await sleep(d); }

inline Coro<int> fail_after(Clock::duration d, std::string what) {
    co_await sleep(d);
    throw std::runtime_error(what);
}

template <class E>
Coro<> raise_after(Clock::duration d) {
    co_await sleep(d);
    throw E();
}

// Sleeps `d`; when cancelled, logs "<name>:cancelled@<ms>" and re-raises.
inline Coro<> sleeper(Clock::duration d, std::string name, Log* log, Clock::time_point t0) {
    try {
        co_await sleep(d);
    } catch (const CancelledError&) {
        log->push_back(tag(name + ":cancelled", t0));
        throw;
    }
    log->push_back(tag(name + ":done", t0));
}

// `try: await sleep(10) finally: 1/0`: a child that fails while being cancelled.
template <class E = ZeroDivisionError>
Coro<> crash_on_cancel(Clock::duration d) {
    try {
        co_await sleep(d);
    } catch (const CancelledError&) {
        throw E();
    }
}

// Sleeps; on cancel spends `cleanup` (awaiting) before re-raising.
inline Coro<> slow_cleanup(Clock::duration d, Clock::duration cleanup, std::string name, Log* log, Clock::time_point t0) {
    std::exception_ptr cancelled;
    try {
        co_await sleep(d);
    } catch (const CancelledError&) {
        cancelled = std::current_exception();
    }
    if (cancelled) {
        log->push_back(tag(name + ":cleanup-start", t0));
        co_await sleep(cleanup);
        log->push_back(tag(name + ":cleanup-end", t0));
        std::rethrow_exception(cancelled);
    }
}

inline std::string what_of(const std::exception_ptr& e) {
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& x) {
        return x.what();
    } catch (const CancelledError& c) {
        return std::string("CancelledError: ") + c.what();
    } catch (...) {
        return "?";
    }
}

inline Coro<> ticks(int n) {
    for (int i = 0; i < n; ++i) co_await sleep(std::chrono::seconds(0));
}

// Awaits `aw`; the CancelledError's message, or nullopt when it did not throw CancelledError.
template <class Aw>
Coro<std::optional<std::string>> cancelled_with(Aw aw) {
    try {
        co_await std::move(aw);
    } catch (const CancelledError& e) {
        co_return std::string(e.what());
    }
    co_return std::nullopt;
}

}  // namespace corio_test
