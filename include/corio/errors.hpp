// The exception types of corio, named after asyncio's.
#pragma once

#include <cerrno>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

namespace corio {

// Deliberately not a std::exception: `catch (const std::exception&)` must not swallow a
// cancellation, just as asyncio made CancelledError a BaseException (bpo-32528).
class CancelledError {
public:
    CancelledError() = default;
    explicit CancelledError(std::string message) : message_(std::move(message)) {}
    const char* what() const noexcept { return message_.c_str(); }
    const std::string& message() const noexcept { return message_; }

private:
    std::string message_;
};

// Thrown into an async generator at its co_yield by aclose(). Like CancelledError it is not a
// std::exception, so ordinary error handling inside a generator does not swallow it.
class GeneratorExit {};

// What corio::run throws after SIGINT (or SIGTERM) cancelled the main task and everything shut down
// gracefully (asyncio.run's KeyboardInterrupt). Not a std::exception, for the same reason as
// CancelledError.
class KeyboardInterrupt {
public:
    explicit KeyboardInterrupt(int signal_number = 2) noexcept : signal_(signal_number) {}
    int signal() const noexcept { return signal_; }  // SIGINT, or SIGTERM
    const char* what() const noexcept { return signal_ == 15 ? "interrupted by SIGTERM" : "interrupted by SIGINT"; }

private:
    int signal_;
};

class TimeoutError : public std::runtime_error {
public:
    TimeoutError() : std::runtime_error("timed out") {}
    explicit TimeoutError(const std::string& what) : std::runtime_error(what) {}
};

class InvalidStateError : public std::logic_error {
public:
    using std::logic_error::logic_error;
};

// Signalling a child process that is gone (reaped): an OSError with ESRCH, as Python's.
class ProcessLookupError : public std::system_error {
public:
    ProcessLookupError() : std::system_error(ESRCH, std::generic_category(), "the process is gone") {}
};

class QueueEmpty : public std::runtime_error {
public:
    QueueEmpty() : std::runtime_error("queue is empty") {}
};

class QueueFull : public std::runtime_error {
public:
    QueueFull() : std::runtime_error("queue is full") {}
};

class QueueShutDown : public std::runtime_error {
public:
    QueueShutDown() : std::runtime_error("queue is shut down") {}
};

class BrokenBarrierError : public std::runtime_error {
public:
    BrokenBarrierError() : std::runtime_error("barrier is broken") {}
};

// What a TaskGroup throws: every failure of its children and body that is not a cancellation.
// split<E>() and contains<E>() play the part of `except*`, looking into nested groups; a nested
// group that is itself an E is taken whole, as Python's split() takes it.
class ExceptionGroup : public std::exception {
public:
    // std::invalid_argument for no exceptions, as Python refuses an empty group.
    ExceptionGroup(std::string message, std::vector<std::exception_ptr> exceptions);

    const char* what() const noexcept override { return what_.c_str(); }
    const std::string& message() const noexcept { return message_; }
    const std::vector<std::exception_ptr>& exceptions() const noexcept { return exceptions_; }

    // Whether split<E>() would match anything: the group itself, a nested group or a member.
    template <class E>
    bool contains() const {
        if (is_a<E>()) return true;
        for (const auto& e : exceptions_) {
            bool found = false;
            Member kind = classify<E>(e, [&](const ExceptionGroup& g) { found = g.is_a<E>() || g.contains<E>(); });
            if (found || kind == Member::Match) return true;
        }
        return false;
    }

    // (matching, rest): the structure of nested groups is kept on both sides. A group that is an
    // E (split<ExceptionGroup>(), split<std::exception>()) matches whole: (*this, nullopt).
    template <class E>
    std::pair<std::optional<ExceptionGroup>, std::optional<ExceptionGroup>> split() const {
        if (is_a<E>()) return {*this, std::nullopt};
        std::vector<std::exception_ptr> match, rest;
        for (const auto& e : exceptions_) {
            Member kind = classify<E>(e, [&](const ExceptionGroup& g) {
                if (g.is_a<E>()) {
                    match.push_back(e);
                    return;
                }
                auto [m, r] = g.split<E>();
                if (m) match.push_back(std::make_exception_ptr(std::move(*m)));
                if (r) rest.push_back(std::make_exception_ptr(std::move(*r)));
            });
            if (kind != Member::Group) (kind == Member::Match ? match : rest).push_back(e);
        }
        std::pair<std::optional<ExceptionGroup>, std::optional<ExceptionGroup>> out;
        if (!match.empty()) out.first.emplace(message_, std::move(match));
        if (!rest.empty()) out.second.emplace(message_, std::move(rest));
        return out;
    }

private:
    enum class Member { Group, Match, Rest };
    // A nested group goes to on_group; any other member is an E or not. (Groups are caught
    // first and apart, so that no handler for an E derived from ExceptionGroup follows one for
    // its base: the compilers warn about that.)
    template <class E, class OnGroup>
    static Member classify(const std::exception_ptr& e, OnGroup&& on_group) {
        try {
            std::rethrow_exception(e);
        } catch (const ExceptionGroup& g) {
            on_group(g);
            return Member::Group;
        } catch (...) {
        }
        if constexpr (!std::is_base_of_v<ExceptionGroup, E>) {
            try {
                std::rethrow_exception(e);
            } catch (const E&) {
                return Member::Match;
            } catch (...) {
            }
        }
        return Member::Rest;
    }

    // Whether this group is an E (ExceptionGroup, a base of it, or a class derived from it).
    template <class E>
    bool is_a() const noexcept {
        if constexpr (std::is_base_of_v<E, ExceptionGroup>)
            return true;
        else if constexpr (std::is_polymorphic_v<E>)
            return dynamic_cast<const E*>(this) != nullptr;
        else
            return false;
    }

    std::string message_;
    std::string what_;
    std::vector<std::exception_ptr> exceptions_;
};

// What an exception_ptr holds, as text: what() for std::exception (and CancelledError), the
// type otherwise. For printing an Outcome's error or an ExceptionGroup's members.
std::string describe(const std::exception_ptr& e);

// The category of getaddrinfo()'s EAI_* codes (asyncio: socket.gaierror): corio::getaddrinfo
// throws std::system_error(code, gai_category()), so `e.code() == std::error_code(EAI_NONAME,
// corio::gai_category())` tells a failed resolution from an errno.
const std::error_category& gai_category() noexcept;

namespace detail {
// True when `e` holds a CancelledError (rethrows to find out: only used off the hot path).
bool is_cancellation(const std::exception_ptr& e) noexcept;
using corio::describe;
}  // namespace detail

}  // namespace corio
