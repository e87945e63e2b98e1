/** Absolute path of cifar10-subset.kds (the CIFAR-10 subset read by tfjs-karat's `cifar10-subset` dataset). */
export declare const path: string;
