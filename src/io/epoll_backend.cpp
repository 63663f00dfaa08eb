// The epoll backend: readiness notifications turned into completions. An eventfd carries
// cross-thread wake-ups (call_soon_threadsafe, to_thread completions).
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

#include "corio/backend.hpp"

namespace corio {

namespace {

class EpollBackend final : public IoBackend {
public:
    EpollBackend() {
        epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
        if (epfd_ < 0) throw std::system_error(errno, std::generic_category(), "epoll_create1");
        wakefd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (wakefd_ < 0) {
            int e = errno;
            ::close(epfd_);
            throw std::system_error(e, std::generic_category(), "eventfd");
        }
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.ptr = nullptr;
        if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, wakefd_, &ev) < 0) {
            int e = errno;
            ::close(wakefd_);
            ::close(epfd_);
            throw std::system_error(e, std::generic_category(), "epoll_ctl(eventfd)");
        }
    }
    ~EpollBackend() override {
        ::close(wakefd_);
        ::close(epfd_);
    }

    const char* name() const noexcept override { return "epoll"; }

    std::size_t poll(std::chrono::nanoseconds timeout) override {
        int ms;
        if (timeout.count() < 0) {
            ms = -1;
        } else {
            // Round up: waking before a timer is due only costs another trip round the loop.
            auto rounded = std::chrono::ceil<std::chrono::milliseconds>(timeout).count();
            ms = rounded > 1'000'000 ? 1'000'000 : int(rounded);
        }
        epoll_event events[64];
        int n = ::epoll_wait(epfd_, events, 64, ms);
        if (n < 0) {
            if (errno == EINTR) return 0;
            throw std::system_error(errno, std::generic_category(), "epoll_wait");
        }
        std::size_t completed = 0;
        for (int i = 0; i < n; ++i) {
            if (events[i].data.ptr == nullptr) {
                std::uint64_t value;
                while (::read(wakefd_, &value, sizeof value) > 0) {
                }
                continue;
            }
        }
        return completed;
    }

    void wakeup() noexcept override {
        std::uint64_t one = 1;
        ssize_t r;
        do {
            r = ::write(wakefd_, &one, sizeof one);
        } while (r < 0 && errno == EINTR);
    }

    void submit(IoOperation&) override {
        throw std::logic_error("corio: socket operations arrive with the I/O layer (issue 3)");
    }
    void cancel(IoOperation&) override {}
    std::size_t pending() const noexcept override { return 0; }

private:
    int epfd_ = -1;
    int wakefd_ = -1;
};

}  // namespace

std::unique_ptr<IoBackend> make_default_backend() { return std::make_unique<EpollBackend>(); }

}  // namespace corio
