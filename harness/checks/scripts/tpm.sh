#!/bin/sh
# The TPM probe (before and after a sleep): the guest's first TPM, its driver, and the SHA-256
# PCRs TPM_PCRS read through sysfs. Each read is a TPM2_PCR_Read the kernel sends the TPM, so
# a read that succeeds shows the TPM answering. Prints tpm.device (empty: no TPM),
# tpm.driver, tpm.pcrs ("N:HEX ...") and, when a read fails, tpm.error with the kernel's words.
# Settings: TPM_PCRS, TPM_READ_S (the bound of one read).
tpm=/sys/class/tpm/tpm0
if [ -d "$tpm" ]; then
  echo "tpm.device=tpm0"
  driver=$(readlink "$tpm/device/driver")
  echo "tpm.driver=${driver##*/}"
  pcrs=""
  for n in $TPM_PCRS; do
    if value=$(timeout -s KILL "$TPM_READ_S" cat "$tpm/pcr-sha256/$n" 2>&1); then
      pcrs="$pcrs $n:$value"
    else
      echo "tpm.error=PCR $n: ${value:-no answer within ${TPM_READ_S}s}"
      break
    fi
  done
  echo "tpm.pcrs=${pcrs# }"
else
  echo "tpm.device="
fi
