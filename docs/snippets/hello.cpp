#include <corio/corio.hpp>

#include <iostream>
#include <string>

using namespace std::chrono_literals;

corio::Coro<std::string> fetch_data(std::string url) {   // async def fetch_data(url) -> str:
    co_await corio::sleep(100ms);                         //     await asyncio.sleep(0.1)
    co_return "data for " + url;                          //     return "data for " + url
}

corio::Coro<int> main_coro() {                            // async def main():
    std::string a = co_await fetch_data("a");             //     a = await fetch_data("a")
    std::cout << a << '\n';                               //     print(a)
    co_return 0;
}

int main() { return corio::run(main_coro()); }           // asyncio.run(main())
