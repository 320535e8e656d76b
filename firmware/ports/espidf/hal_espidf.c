/* hal_espidf.c - the espidf port (ESP32-S3 and other ESP-IDF targets): hal.h over
 * ESP-IDF, and the firmware's entry. The console is the USB-Serial/JTAG port (the
 * board's USB socket, /dev/ttyACM0 on the host); the clock is esp_timer (microseconds);
 * the model is the "model" data partition, memory-mapped in place by
 * esp_partition_mmap. Board numbers (ARENA_BYTES, STACK_BYTES, MOTE_BOARD_NAME) come
 * from boards/<name>.toml through platformio.ini's build_flags.
 *
 * Written against ESP-IDF 5.x and NOT built in this repository's CI (no Xtensa
 * compiler here): what is tested is everything around it (partition table, offsets,
 * the esptool call). */
#include <stdint.h>

#include "driver/usb_serial_jtag.h"
#include "esp_partition.h"
#include "esp_timer.h"
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"

#include "console.h"
#include "hal.h"

#define MODEL_PARTITION_SUBTYPE 0x40 /* the data subtype mote.boards.platformio writes */

static uint8_t arena[ARENA_BYTES] __attribute__((aligned(16)));
static mote_console console;

void hal_init(void)
{
    usb_serial_jtag_driver_config_t config = USB_SERIAL_JTAG_DRIVER_CONFIG_DEFAULT();
    ESP_ERROR_CHECK(usb_serial_jtag_driver_install(&config));
}

void hal_write(const void *bytes, size_t n) { usb_serial_jtag_write_bytes(bytes, n, portMAX_DELAY); }

int hal_read_byte(uint32_t timeout_ms)
{
    uint8_t byte;
    return usb_serial_jtag_read_bytes(&byte, 1, pdMS_TO_TICKS(timeout_ms)) == 1 ? byte : -1;
}

uint64_t hal_ticks(void) { return (uint64_t)esp_timer_get_time(); }

uint64_t hal_ticks_per_second(void) { return 1000000u; }

const uint8_t *hal_blob(size_t *region_bytes)
{
    const esp_partition_t *part =
        esp_partition_find_first(ESP_PARTITION_TYPE_DATA, MODEL_PARTITION_SUBTYPE, "model");
    const void *mapped = NULL;
    esp_partition_mmap_handle_t handle;
    *region_bytes = 0;
    if (part == NULL ||
        esp_partition_mmap(part, 0, part->size, ESP_PARTITION_MMAP_DATA, &mapped, &handle) != ESP_OK) {
        return (const uint8_t *)"";  /* no partition: the console reports an empty model */
    }
    *region_bytes = part->size;
    return mapped;
}

static void run_console(void *unused)
{
    (void)unused;
    const mote_console_config cfg = {
        .board = MOTE_BOARD_NAME,
        .arena = arena,
        .arena_bytes = sizeof arena,
        .ctx = 0,
        .echo = 1,
        .port_info = NULL,
    };
    mote_console_init(&console, &cfg);
    mote_console_run(&console);
}

void app_main(void)
{
    hal_init();
    /* the console in a task of the board file's stack size (bytes) */
    xTaskCreate(run_console, "mote", STACK_BYTES, NULL, 5, NULL);
}
