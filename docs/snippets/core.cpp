#include <corio/corio.hpp>

#include <iostream>
#include <string>

using namespace std::chrono_literals;

corio::Coro<std::string> fetch_data() {          // async def fetch_data() -> str:
    co_await corio::sleep(100ms);                 //     await asyncio.sleep(0.1)  # simulate I/O
    co_return "result";                           //     return "result"
}

corio::Coro<> main_coro() {                       // async def main() -> None:
    std::string data = co_await fetch_data();     //     data = await fetch_data()
    std::cout << data << '\n';                    //     print(data)
}

int main() { corio::run(main_coro()); }           // asyncio.run(main())
