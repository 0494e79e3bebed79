"""The newsroom: editorial rules, the what-if preview across a panel of readers, and the exposure audit."""
