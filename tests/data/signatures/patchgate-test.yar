rule Patchgate_Sim_FileInfector_YARA
{
    strings:
        $marker = "PATCHGATE-SIMULATED-FILE-INFECTOR-FUNLOVE"
    condition:
        $marker at (filesize - 42)
}
