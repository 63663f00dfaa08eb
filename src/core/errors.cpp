#include "corio/errors.hpp"

#include <netdb.h>

namespace corio {

ExceptionGroup::ExceptionGroup(std::string message, std::vector<std::exception_ptr> exceptions)
    : message_(std::move(message)), exceptions_(std::move(exceptions)) {
    if (exceptions_.empty()) throw std::invalid_argument("ExceptionGroup: no exceptions to group");
    what_ = message_ + " (" + std::to_string(exceptions_.size()) + " sub-exception" +
            (exceptions_.size() == 1 ? "" : "s") + ")";
}

namespace {
class GaiCategory final : public std::error_category {
public:
    const char* name() const noexcept override { return "getaddrinfo"; }
    std::string message(int code) const override { return ::gai_strerror(code); }
};
}  // namespace

const std::error_category& gai_category() noexcept {
    static const GaiCategory category;
    return category;
}

namespace detail {

bool is_cancellation(const std::exception_ptr& e) noexcept {
    if (!e) return false;
    try {
        std::rethrow_exception(e);
    } catch (const CancelledError&) {
        return true;
    } catch (...) {
        return false;
    }
}

}  // namespace detail

std::string describe(const std::exception_ptr& e) {
    if (!e) return "no exception";
    try {
        std::rethrow_exception(e);
    } catch (const CancelledError& c) {
        return std::string("CancelledError(") + c.what() + ")";
    } catch (const ExceptionGroup& g) {
        // Its members too, as Python prints a group's whole tree: the count alone ("1
        // sub-exception") hides what went wrong. A nested group is braced.
        std::string out = std::string(g.what()) + ":";
        for (std::size_t i = 0; i < g.exceptions().size(); ++i) {
            const std::exception_ptr& member = g.exceptions()[i];
            bool nested = false;
            try {
                std::rethrow_exception(member);
            } catch (const ExceptionGroup&) {
                nested = true;
            } catch (...) {
            }
            out += (i ? "; [" : " [") + std::to_string(i + 1) + "] ";
            out += nested ? "{" + describe(member) + "}" : describe(member);
        }
        return out;
    } catch (const std::exception& x) {
        return x.what();
    } catch (const GeneratorExit&) {
        return "GeneratorExit";
    } catch (const KeyboardInterrupt& k) {
        return std::string("KeyboardInterrupt(") + k.what() + ")";
    } catch (...) {
        return "unknown exception";
    }
}

}  // namespace corio
