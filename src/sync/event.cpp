#include "corio/event.hpp"

namespace corio {

Event::~Event() {
    while (waiters_.pop_front()) {
    }
}

void Event::set() noexcept {
    if (set_) return;
    set_ = true;
    while (detail::WaitNode* w = waiters_.pop_front()) w->wake();
}

}  // namespace corio
