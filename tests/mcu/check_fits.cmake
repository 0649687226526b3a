# Checks a firmware size report (mcu/ch32v003/cmake/size_report.cmake): the image was built
# and fits its chip. cmake -DREPORT=<name>-<chip>.size.txt -P check_fits.cmake
cmake_minimum_required(VERSION 3.18)
if(NOT EXISTS "${REPORT}")
  message(FATAL_ERROR "${REPORT} missing: the firmware was not built (or its link failed)")
endif()
file(STRINGS "${REPORT}" lines)
list(GET lines 0 summary)
if(NOT "fits=1" IN_LIST lines)
  message(FATAL_ERROR "does not fit: ${summary}")
endif()
message(STATUS "${summary}")
